"""Figures the liaison office reports and operators watch. 满意率 is defined here, once."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liaison.case.lifecycle import Status
from liaison.case.models import Case, Rating
from liaison.messaging.models import DeliveryAttempt, OutboxMessage

SATISFIED_VALUES = ("satisfied", "basically_satisfied")
RATED_VALUES = ("satisfied", "basically_satisfied", "unsatisfied")


def satisfaction_rate(satisfied: int, basically_satisfied: int, unsatisfied: int) -> float | None:
    """满意率 = (满意 + 基本满意) / rated. 未评价 (unrated) is not in the denominator and never
    counts as satisfied; None when nothing was rated."""
    rated = satisfied + basically_satisfied + unsatisfied
    return None if rated == 0 else (satisfied + basically_satisfied) / rated


# 受理量 counts every case taken up: all but 不予受理, 并单 (counted in the case it joined) and 撤回.
NOT_TAKEN_UP = (Status.REJECTED, Status.MERGED, Status.WITHDRAWN)
# 办结: the handler has concluded the case (awaiting the rating, or rated/unrated after it).
CONCLUDED = (Status.CLOSED, Status.ARCHIVED, Status.UNRATED)


@dataclass(frozen=True)
class Figures:
    """A county's (or the whole city's) reporting figures: counts only, no personal data."""

    received: int = 0  # 受理量
    concluded: int = 0  # 办结量
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0

    @property
    def conclusion_rate(self) -> float | None:
        """办结率 = 办结 / 受理量 (None when nothing was taken up)."""
        return None if self.received == 0 else self.concluded / self.received

    @property
    def rated(self) -> int:
        return self.satisfied + self.basically_satisfied + self.unsatisfied

    @property
    def satisfaction_rate(self) -> float | None:
        return satisfaction_rate(self.satisfied, self.basically_satisfied, self.unsatisfied)

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(*(a + b for a, b in zip(
            (self.received, self.concluded, self.satisfied, self.basically_satisfied, self.unsatisfied),
            (other.received, other.concluded, other.satisfied, other.basically_satisfied, other.unsatisfied))))


def county_figures(session: Session, county_ids: list[int]) -> dict[int, Figures]:
    """受理量, 办结 and ratings per county (every county in `county_ids`, also those with no cases).
    The whole city's figures are their sum (`sum(..., Figures())`): 满意率 of the summed ratings,
    never an average of the counties' rates."""
    taken_up = Case.county_id.in_(county_ids), Case.status.not_in(NOT_TAKEN_UP)
    received = dict(session.execute(select(Case.county_id, func.count()).where(*taken_up)
                                    .group_by(Case.county_id)).all())
    concluded = dict(session.execute(select(Case.county_id, func.count()).where(
        Case.county_id.in_(county_ids), Case.status.in_(CONCLUDED)).group_by(Case.county_id)).all())
    ratings: dict[int, dict[str, int]] = {}
    for county_id, value, count in session.execute(
            select(Rating.county_id, Rating.value, func.count())
            .where(Rating.county_id.in_(county_ids), Rating.value.in_(RATED_VALUES))
            .group_by(Rating.county_id, Rating.value)):
        ratings.setdefault(county_id, {})[value] = count
    return {cid: Figures(received.get(cid, 0), concluded.get(cid, 0),
                         ratings.get(cid, {}).get("satisfied", 0),
                         ratings.get(cid, {}).get("basically_satisfied", 0),
                         ratings.get(cid, {}).get("unsatisfied", 0))
            for cid in county_ids}


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
