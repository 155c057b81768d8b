"""民生实事票决: the deputies of one level vote on candidate livelihood projects.

Eligibility is checked through the caller's Account: only a deputy account whose deputy is of the
vote's level may vote; one ballot each (unique per vote and deputy) with 1..max_choices distinct
candidates. Results are published only after staff close the vote.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.engagement.models import ProjectBallot, ProjectCandidate, ProjectVote
from liaison.people.models import DEPUTY_LEVEL_NAMES, DEPUTY_LEVELS, Deputy
from liaison.people.service import DEPUTY, STAFF, Principal


class VoteError(Refusal):
    """A vote action refused: `kind`, `code`, Chinese message."""


def create(session: Session, principal: Principal, title: str, level: str, candidates: list[dict[str, Any]],
           max_choices: int = 1) -> ProjectVote:
    """Open a vote among `candidates` ({code, title, description}) for the deputies of `level`."""
    if principal.role != STAFF or principal.account.station_id is not None:
        raise VoteError(FORBIDDEN, "county_staff_only", "只有县级工委账号可以发起票决")
    if level not in DEPUTY_LEVELS:
        raise VoteError(INVALID, "invalid_level", "层级无效")
    codes = [c["code"] for c in candidates]
    if len(candidates) < 2 or len(set(codes)) != len(codes):
        raise VoteError(INVALID, "invalid_candidates", "候选项目至少两个，且编码不能重复")
    if not 1 <= max_choices <= len(candidates):
        raise VoteError(INVALID, "invalid_max_choices", "可选项目数应在 1 到候选项目数之间")
    vote = ProjectVote(title=title.strip(), level=level, max_choices=max_choices,
                       created_by=principal.account.id, status="open")
    session.add(vote)
    session.flush()
    for candidate in candidates:
        session.add(ProjectCandidate(vote_id=vote.id, code=candidate["code"], title=candidate["title"],
                                     description=candidate.get("description")))
    session.flush()
    return vote


def by_public_id(session: Session, public_id: str) -> ProjectVote:
    vote = session.scalar(select(ProjectVote).where(ProjectVote.public_id == public_id))
    if vote is None:
        raise VoteError(NOT_FOUND, "not_found", "票决不存在")
    return vote


def candidates_of(session: Session, vote: ProjectVote) -> list[ProjectCandidate]:
    return list(session.scalars(select(ProjectCandidate).where(ProjectCandidate.vote_id == vote.id)
                                .order_by(ProjectCandidate.id)))


def eligible(session: Session, principal: Principal, vote: ProjectVote) -> bool:
    """Only a deputy account of the vote's level."""
    if principal.role != DEPUTY or principal.account.deputy_id is None:
        return False
    level = session.scalar(select(Deputy.level).where(Deputy.id == principal.account.deputy_id))
    return level == vote.level


def cast(session: Session, principal: Principal, vote: ProjectVote, candidate_codes: list[str]) -> ProjectBallot:
    """The deputy's single ballot."""
    if not eligible(session, principal, vote):
        raise VoteError(FORBIDDEN, "not_eligible",
                        f"只有{DEPUTY_LEVEL_NAMES.get(vote.level, '')}人大代表可以参加本次票决")
    if vote.status != "open":
        raise VoteError(CONFLICT, "vote_closed", "票决已结束")
    chosen = list(dict.fromkeys(candidate_codes))
    if not 1 <= len(chosen) <= vote.max_choices:
        raise VoteError(INVALID, "invalid_choices", f"请选择 1 至 {vote.max_choices} 个项目")
    by_code = {c.code: c.id for c in candidates_of(session, vote)}
    unknown = [c for c in chosen if c not in by_code]
    if unknown:
        raise VoteError(INVALID, "unknown_candidate", "候选项目不存在：" + "、".join(unknown))
    ballot = ProjectBallot(vote_id=vote.id, deputy_id=principal.account.deputy_id,
                           candidate_ids=[by_code[c] for c in chosen])
    try:
        with session.begin_nested():
            session.add(ballot)
            session.flush()
    except IntegrityError:
        raise VoteError(CONFLICT, "already_voted", "您已投过票，每位代表限投一次") from None
    return ballot


def close(session: Session, principal: Principal, vote: ProjectVote) -> ProjectVote:
    """Close the vote and publish its results."""
    if principal.role != STAFF or principal.account.station_id is not None:
        raise VoteError(FORBIDDEN, "county_staff_only", "只有县级工委账号可以结束票决")
    if vote.status != "open":
        raise VoteError(CONFLICT, "vote_closed", "票决已结束")
    vote.status, vote.closed_at = "closed", utcnow()
    session.flush()
    return vote


def summary(session: Session, vote: ProjectVote) -> dict[str, Any]:
    """Turnout always; the tally per candidate only once the vote is closed."""
    electorate = session.scalar(select(func.count()).select_from(Deputy).where(Deputy.level == vote.level)) or 0
    ballots = list(session.scalars(select(ProjectBallot.candidate_ids).where(ProjectBallot.vote_id == vote.id)))
    result: dict[str, Any] = {"electorate": electorate, "ballots": len(ballots), "published": vote.status == "closed",
                              "tally": None}
    if vote.status == "closed":
        counts: dict[int, int] = {}
        for ids in ballots:
            for candidate_id in ids:
                counts[candidate_id] = counts.get(candidate_id, 0) + 1
        tally = [{"code": c.code, "title": c.title, "votes": counts.get(c.id, 0)}
                 for c in candidates_of(session, vote)]
        result["tally"] = sorted(tally, key=lambda t: (-t["votes"], t["code"]))
    return result
