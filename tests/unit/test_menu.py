"""The official account's menu as data: within WeChat's limits, every click key answered."""
import copy

import pytest

from liaison.conversation import menu
from liaison.conversation.service import MENU_HANDLERS


def test_the_menu_file_is_valid_and_every_key_is_answered():
    data = menu.load()
    menu.check(data)
    assert set(menu.click_keys(data)) <= set(MENU_HANDLERS)
    assert {"FIND_DEPUTY", "MY_CASES", "RATE", "MEET_WEDNESDAY"} <= set(menu.click_keys(data))


def test_without_a_mini_program_the_links_become_plain_links():
    sent = menu.body(menu.load(), None)
    leaves = [leaf for b in sent["button"] for leaf in (b.get("sub_button") or [b])]
    assert "miniprogram" not in {leaf["type"] for leaf in leaves}
    assert all(leaf.get("url") for leaf in leaves if leaf["type"] == "view")


@pytest.mark.parametrize("breakage", ["unknown_key", "too_many", "long_name"])
def test_a_broken_menu_is_refused(breakage):
    data = copy.deepcopy(menu.load())
    if breakage == "unknown_key":
        data["button"][0]["key"] = "NOBODY_ANSWERS"
    elif breakage == "too_many":
        data["button"].append({"type": "click", "name": "多余", "key": "RATE"})
    else:
        data["button"][0]["name"] = "一二三四五六"
    with pytest.raises(menu.MenuError):
        menu.check(data)
