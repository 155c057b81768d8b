"""The transition table: every legal move, and every illegal one refused."""
import itertools

import pytest

from liaison.case import lifecycle
from liaison.case.lifecycle import TRANSITIONS, IllegalTransition, Status

ALL_STATUSES = [v for k, v in vars(Status).items() if not k.startswith("_")]


def test_the_closed_loop_path_is_legal():
    path = [("assign", Status.ASSIGNED), ("accept", Status.ACCEPTED), ("dispatch", Status.TRANSFERRED),
            ("accept", Status.ACCEPTED), ("reply", Status.REPLIED), ("close", Status.CLOSED),
            ("rate_unsatisfied", Status.REOPENED), ("accept", Status.ACCEPTED), ("close", Status.CLOSED),
            ("rate_satisfied", Status.ARCHIVED)]
    status = Status.SUBMITTED
    for action, expected in path:
        status = lifecycle.check(action, status).target
        assert status == expected


@pytest.mark.parametrize("action,status", [
    (a, s) for a, s in itertools.product(TRANSITIONS, ALL_STATUSES) if s not in TRANSITIONS[a].sources])
def test_every_move_outside_the_table_is_refused(action, status):
    with pytest.raises(IllegalTransition):
        lifecycle.check(action, status, reason="有理由")


def test_final_statuses_allow_nothing_but_ending_a_hand_up():
    """A final case takes no action, except that the city may still answer or hand back a hand-up
    (三级联动): its answer can come after the county ended the case, and the hand-up, which has a
    table of its own (`REFERRAL_TRANSITIONS`), must be able to end too. Neither changes the case."""
    for status in lifecycle.FINAL_STATUSES:
        assert lifecycle.allowed_actions(status) == ["city_answer", "hand_down"]
    assert all(lifecycle.CASEWORK[a].target is None for a in ("city_answer", "hand_down"))


@pytest.mark.parametrize("action", ["return", "reject"])
def test_return_and_reject_need_a_reason(action):
    source = next(iter(TRANSITIONS[action].sources))
    with pytest.raises(IllegalTransition, match="reason"):
        lifecycle.check(action, source, reason="  ")
    assert lifecycle.check(action, source, reason="职能不符").target == TRANSITIONS[action].target


def test_only_a_rating_archives():
    archiving = [t.action for t in TRANSITIONS.values() if t.target == Status.ARCHIVED]
    assert archiving == ["rate_satisfied"]


def test_unknown_action_is_refused():
    with pytest.raises(IllegalTransition, match="unknown"):
        lifecycle.check("teleport", Status.ASSIGNED)
