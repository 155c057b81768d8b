"""The outbox status table (liaison.messaging.lifecycle), walked without a database."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from liaison.messaging import lifecycle
from liaison.messaging.lifecycle import MOVES, STATUSES, IllegalOutboxMove, move


def test_every_move_goes_between_known_statuses():
    for step in MOVES.values():
        assert step.target in STATUSES, step
        assert step.sources and set(step.sources) <= set(STATUSES), step


def test_every_move_applies_from_each_source_and_from_nothing_else():
    for action, step in MOVES.items():
        for status in STATUSES:
            row = SimpleNamespace(id=1, status=status)
            if status in step.sources:
                assert move(row, action) == step.target and row.status == step.target
            else:
                with pytest.raises(IllegalOutboxMove):
                    move(row, action)
                assert row.status == status  # a refused move writes nothing


def test_every_status_is_reachable_and_only_final_ones_are_dead_ends():
    reachable = set(lifecycle.INITIAL)
    frontier = list(reachable)
    while frontier:
        status = frontier.pop()
        for step in MOVES.values():
            if status in step.sources and step.target not in reachable:
                reachable.add(step.target)
                frontier.append(step.target)
    assert reachable == set(STATUSES)
    dead_ends = {s for s in STATUSES if not any(s in step.sources for step in MOVES.values())}
    assert dead_ends == set(lifecycle.FINAL)


def test_a_claimed_row_ends_in_one_outcome_and_only_operator_statuses_go_back():
    after_send = {step.target for step in MOVES.values() if step.sources == (lifecycle.SENDING,)}
    assert after_send == {"sent", "failed", "dead", "waiting", "inapp", "unknown"}
    assert set(lifecycle.sources("requeue")) == {"dead", "unknown", "failed", "waiting"}
    assert "sent" not in lifecycle.sources("requeue") and "sending" not in lifecycle.sources("claim")
