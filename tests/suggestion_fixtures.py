"""Suggestions and 问题清单 entries made through the domain for the authorization sweeps: ids one
caller owns and others must not see (tests/test_api_authz.py, tests/test_tenancy.py)."""
from __future__ import annotations

from sqlalchemy import select

from liaison.core import db, tenant
from liaison.people.models import Account, Deputy
from liaison.people.service import Principal
from liaison.suggestion import service as suggestions


def _principal(session, role: str, name: str, **links) -> Principal:
    account = Account(role=role, name=name, **links)
    session.add(account)
    session.flush()
    return Principal(role, account=account)


def foreign_objects(county_id: int = tenant.DEFAULT_COUNTY_ID) -> dict[str, str]:
    """A draft suggestion led by D001 and one led by D003, and an entry made by county staff."""
    found = {}
    with tenant.use(tenant.county(county_id)), db.session_scope() as session:
        for code in ("D001", "D003"):
            deputy = session.scalar(select(Deputy).where(Deputy.code == code))
            author = _principal(session, "deputy", f"{deputy.name}（建议）", deputy_id=deputy.id)
            found[f"suggestion_{code.lower()}"] = suggestions.draft(
                session, author, title=f"{deputy.name}领衔的建议", problems="问题", proposals="建议").public_id
        staff = _principal(session, "staff", "县工委（问题清单）")
        found["entry_county"] = suggestions.create_entry(session, staff, "县工委整理的问题").public_id
    return found
