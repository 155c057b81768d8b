"""The demo county has suggestions and 民生实事 projects in every state, made by the real services."""
from __future__ import annotations

from sqlalchemy import select

from liaison import demo_history, demo_suggestions
from liaison.project.models import LivelihoodProject
from liaison.suggestion import lifecycle
from liaison.suggestion.models import Suggestion


def test_the_demo_has_suggestions_and_projects_in_every_state(db_session):
    demo_history.seed_history(db_session, cases_count=60, months=6)
    assert demo_suggestions.seed(db_session) == len(demo_suggestions.SUGGESTIONS)
    rows = list(db_session.scalars(select(Suggestion)))
    assert {s.status for s in rows} == set(lifecycle.STATUS_LABELS) - {lifecycle.Status.WITHDRAWN}
    assert any(s.escalation_level >= 1 for s in rows)  # the overdue one was escalated by the sweep
    assert any(s.key_supervision for s in rows) and any(s.round == 2 for s in rows)
    assert {(p.status, p.color) for p in db_session.scalars(select(LivelihoodProject))} == {
        ("in_progress", "green"), ("in_progress", "yellow"), ("in_progress", "red"), ("completed", "green")}
    assert demo_suggestions.seed(db_session) == 0  # once
