"""民生实事票决: the deputies of one level vote on candidate livelihood projects.

Eligibility is checked through the caller's Account: only a deputy account whose deputy is of the
vote's level may vote; one ballot each (unique per vote and deputy) with 1..max_choices distinct
candidates. Results are published only after staff close the vote.

Quorum and majority (the county may set both, `counties.settings["project_vote"]`): by default a vote
can be closed only when more than half of all the level's deputies have voted (`quorum`), and a
candidate is chosen (入选) only with the votes of more than half of all the level's deputies
(`majority`: "all"), or of the ballots cast ("ballots"). Without a quorum the vote stays open.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.engagement.models import ProjectBallot, ProjectCandidate, ProjectVote
from liaison.people.models import DEPUTY_LEVEL_NAMES, DEPUTY_LEVELS, Deputy
from liaison.people.service import DEPUTY, STAFF, Principal
from liaison.tenancy.models import County

DEFAULT_RULES = {"quorum": 0.5, "majority": "all"}  # more than half of all the level's deputies


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


def rules(session: Session) -> dict[str, Any]:
    """The county's quorum (share of all deputies that must vote, exceeded) and majority base."""
    county_id = tenant.of(session).write_county
    county = session.get(County, county_id) if county_id is not None else None
    own = ((county.settings or {}).get("project_vote") or {}) if county is not None else {}
    return {**DEFAULT_RULES, **own}


def electorate_of(session: Session, vote: ProjectVote) -> int:
    if vote.electorate is not None:
        return vote.electorate
    return session.scalar(select(func.count()).select_from(Deputy).where(Deputy.level == vote.level)) or 0


def _counts(session: Session, vote: ProjectVote) -> tuple[int, dict[int, int]]:
    ballots = list(session.scalars(select(ProjectBallot.candidate_ids).where(ProjectBallot.vote_id == vote.id)))
    counts: dict[int, int] = {}
    for ids in ballots:
        for candidate_id in ids:
            counts[candidate_id] = counts.get(candidate_id, 0) + 1
    return len(ballots), counts


def close(session: Session, principal: Principal, vote: ProjectVote) -> ProjectVote:
    """Close the vote and publish its results: refused without a quorum; candidates below the
    majority are not chosen."""
    if principal.role != STAFF or principal.account.station_id is not None:
        raise VoteError(FORBIDDEN, "county_staff_only", "只有县级工委账号可以结束票决")
    if vote.status != "open":
        raise VoteError(CONFLICT, "vote_closed", "票决已结束")
    rule = rules(session)
    electorate = electorate_of(session, vote)
    cast_count, counts = _counts(session, vote)
    if electorate == 0 or cast_count <= electorate * float(rule["quorum"]):
        raise VoteError(CONFLICT, "no_quorum",
                        f"参加投票的代表未达法定人数（应到 {electorate} 人，已投 {cast_count} 人，"
                        f"须超过 {float(rule['quorum']):.0%}），不能结束票决")
    base = electorate if rule["majority"] == "all" else cast_count
    for candidate in candidates_of(session, vote):
        candidate.votes = counts.get(candidate.id, 0)
        candidate.chosen = candidate.votes * 2 > base
    vote.status, vote.closed_at, vote.electorate = "closed", utcnow(), electorate
    session.flush()
    return vote


def summary(session: Session, vote: ProjectVote) -> dict[str, Any]:
    """Turnout always; the tally per candidate (with 入选) only once the vote is closed."""
    cast_count, _counts_now = _counts(session, vote)
    result: dict[str, Any] = {"electorate": electorate_of(session, vote), "ballots": cast_count,
                              "published": vote.status == "closed", "tally": None}
    if vote.status == "closed":
        tally = [{"code": c.code, "title": c.title, "votes": c.votes or 0, "chosen": bool(c.chosen)}
                 for c in candidates_of(session, vote)]
        result["tally"] = sorted(tally, key=lambda t: (-t["votes"], t["code"]))
    return result
