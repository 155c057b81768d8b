"""Suggestions, 问题清单 entries, 民生实事 projects and proposals made through the domain for the
authorization sweeps: ids one caller owns and others must not see (tests/test_api_authz.py,
tests/test_tenancy.py)."""
from __future__ import annotations

from sqlalchemy import select

from liaison.core import db, tenant
from liaison.engagement import votes
from liaison.people.models import Account, Deputy, Resident
from liaison.people.service import Principal
from liaison.project import service as projects
from liaison.suggestion import service as suggestions


def _principal(session, role: str, name: str, **links) -> Principal:
    account = Account(role=role, name=name, **links)
    session.add(account)
    session.flush()
    return Principal(role, account=account)


def foreign_objects(county_id: int = tenant.DEFAULT_COUNTY_ID) -> dict[str, str]:
    """A draft suggestion led by D001 and one led by D003, an entry made by county staff, a planned
    project led by 交通 (chosen by every county deputy), and a resident's proposal."""
    found = {}
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        for code in ("D001", "D003"):
            deputy = session.scalar(select(Deputy).where(Deputy.code == code))
            author = _principal(session, "deputy", f"{deputy.name}（建议）", deputy_id=deputy.id)
            found[f"suggestion_{code.lower()}"] = suggestions.draft(
                session, author, title=f"{deputy.name}领衔的建议", problems="问题", proposals="建议").public_id
        staff = _principal(session, "staff", "县工委（问题清单）")
        found["entry_county"] = suggestions.create_entry(session, staff, "县工委整理的问题").public_id
        vote = votes.create(session, staff, "民生实事（授权测试）", "county",
                            [{"code": "P1", "title": "授权测试项目"}, {"code": "P2", "title": "另一项目"}])
        for deputy in session.scalars(select(Deputy).where(Deputy.level == "county")):
            votes.cast(session, _principal(session, "deputy", deputy.name, deputy_id=deputy.id), vote, ["P1"])
        votes.close(session, staff, vote)
        found["project_jiaotong"] = projects.create_from_vote(session, staff, vote, "P1", "jiaotong").public_id
        resident = Resident(oa_openid=f"o_proposal_{county_id}")
        session.add(resident)
        session.flush()
        found["proposal"] = projects.propose(session, Principal("resident", resident=resident), "建社区食堂",
                                             None).public_id
    return found
