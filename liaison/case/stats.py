"""Figures the liaison office reports and operators watch. 满意率 is defined here, once."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liaison.case.models import Case, Rating
from liaison.messaging.models import DeliveryAttempt, OutboxMessage

SATISFIED_VALUES = ("satisfied", "basically_satisfied")
RATED_VALUES = ("satisfied", "basically_satisfied", "unsatisfied")


def satisfaction_rate(satisfied: int, basically_satisfied: int, unsatisfied: int) -> float | None:
    """满意率 = (满意 + 基本满意) / rated. 未评价 (unrated) is not in the denominator and never
    counts as satisfied; None when nothing was rated."""
    rated = satisfied + basically_satisfied + unsatisfied
    return None if rated == 0 else (satisfied + basically_satisfied) / rated


def case_satisfaction(session: Session) -> float | None:
    """满意率 over every rating of every case round."""
    counts = dict(session.execute(select(Rating.value, func.count()).where(
        Rating.value.in_(RATED_VALUES)).group_by(Rating.value)).all())
    return satisfaction_rate(counts.get("satisfied", 0), counts.get("basically_satisfied", 0),
                             counts.get("unsatisfied", 0))


def outbox_counts(session: Session) -> dict[str, int]:
    """Outbox rows by status (pending, sent, waiting, dead, unknown …)."""
    return dict(session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def wechat_error_counts(session: Session) -> dict[tuple[str, int | None], int]:
    """Failed WeChat calls by (channel, errcode); errcode None = HTTP or connection failure."""
    rows = session.execute(select(DeliveryAttempt.channel, DeliveryAttempt.errcode, func.count())
                           .where(DeliveryAttempt.ok.is_(False))
                           .group_by(DeliveryAttempt.channel, DeliveryAttempt.errcode)).all()
    return {(channel, errcode): count for channel, errcode, count in rows}


def case_alerts(session: Session) -> dict[str, int]:
    """Open cases by traffic light (none, yellow, red)."""
    return dict(session.execute(select(Case.alert, func.count()).where(Case.next_action_at.is_not(None))
                                .group_by(Case.alert)).all())
