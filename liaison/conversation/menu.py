"""The official account's menu (找代表 / 我的诉求 / 评价 / 周三见 and mini-program links) as data
(`liaison/data/menu.json`), checked against WeChat's limits and pushed through `menu/create`
(`python manage.py push-menu`). The click keys it names are answered by the conversation
(`service.MENU_HANDLERS`); `check` refuses a menu with a key nobody answers."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from liaison.conversation.service import MENU_HANDLERS

MENU_FILE = Path(__file__).parent.parent / "data" / "menu.json"
MAX_BUTTONS, MAX_SUB_BUTTONS = 3, 5
MAX_NAME_BYTES, MAX_SUB_NAME_BYTES = 16, 60  # WeChat counts UTF-8 bytes (5 / 20 Chinese characters)
TYPES = {"click": ("key",), "view": ("url",), "miniprogram": ("pagepath", "url")}


class MenuError(ValueError):
    """The menu breaks one of WeChat's rules or names a click key nobody answers."""


def load(path: Path | str | None = None) -> dict[str, Any]:
    data = json.loads(Path(path or MENU_FILE).read_text(encoding="utf-8"))
    return {"button": data["button"]}


def body(menu: dict[str, Any], miniprogram_appid: str | None) -> dict[str, Any]:
    """The `menu/create` body: mini-program buttons get the appid, or become links without one."""
    menu = copy.deepcopy(menu)
    for button in _leaves(menu):
        if button.get("type") == "miniprogram":
            if miniprogram_appid:
                button["appid"] = miniprogram_appid
            else:
                button["type"] = "view"
                button.pop("pagepath", None)
    check(menu)
    return menu


def check(menu: dict[str, Any]) -> None:
    buttons = menu.get("button") or []
    if not 1 <= len(buttons) <= MAX_BUTTONS:
        raise MenuError(f"the menu needs 1 to {MAX_BUTTONS} buttons")
    for button in buttons:
        _check_name(button, MAX_NAME_BYTES)
        subs = button.get("sub_button")
        if subs is not None:
            if not 1 <= len(subs) <= MAX_SUB_BUTTONS:
                raise MenuError(f"{button['name']}: 1 to {MAX_SUB_BUTTONS} entries")
            for sub in subs:
                _check_name(sub, MAX_SUB_NAME_BYTES)
                _check_action(sub)
        else:
            _check_action(button)


def click_keys(menu: dict[str, Any]) -> list[str]:
    return [b["key"] for b in _leaves(menu) if b.get("type") == "click"]


def push(client, miniprogram_appid: str | None, path: Path | str | None = None) -> dict[str, Any]:
    """Create the menu on WeChat (it replaces the previous one); returns the body sent."""
    menu = body(load(path), miniprogram_appid)
    client.create_menu(menu)
    return menu


def _leaves(menu: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for button in menu.get("button") or []:
        out += button.get("sub_button") or [button]
    return out


def _check_name(button: dict[str, Any], limit: int) -> None:
    name = button.get("name")
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > limit:
        raise MenuError(f"button name {name!r}: 1 to {limit} bytes")


def _check_action(button: dict[str, Any]) -> None:
    kind = button.get("type")
    if kind not in TYPES:
        raise MenuError(f"{button.get('name')}: unknown type {kind!r}")
    for field in TYPES[kind]:
        if not button.get(field):
            raise MenuError(f"{button['name']}: {kind} needs {field}")
    if kind == "click" and button["key"] not in MENU_HANDLERS:
        raise MenuError(f"{button['name']}: nobody answers the click key {button['key']!r}")
