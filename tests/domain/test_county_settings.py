"""County settings are kept per process (the webhook reads no counties row per case), yet a change is
seen at once by the process that writes it, and a session changing its county sees its own change."""
from __future__ import annotations

from sqlalchemy import update

from liaison.case import service as cases
from liaison.core import db
from liaison.people.models import Resident
from liaison.tenancy import service as tenancy
from liaison.tenancy.models import County


def _open(openid: str) -> str:
    with db.session_scope() as session:
        resident = Resident(oa_openid=openid)
        session.add(resident)
        session.flush()
        return cases.open_case(session, resident, "东关街有人占道经营，晚上噪音很大").routing["flow"]


def test_a_change_written_by_this_process_is_used_by_the_next_case(demo_db):
    assert _open("o_settings_1") == cases.DEPUTY_FIRST  # read, and now kept
    with db.session_scope() as session:
        county = session.get(County, 1)
        county.settings = {**(county.settings or {}), "case_flow": cases.DIRECT_DISPATCH}
    assert _open("o_settings_2") == cases.DIRECT_DISPATCH


def test_a_session_sees_the_county_it_is_changing(demo_db):
    assert _open("o_settings_3") == cases.DEPUTY_FIRST
    with db.session_scope() as session:
        county = session.get(County, 1)
        county.settings = {**(county.settings or {}), "case_flow": cases.DIRECT_DISPATCH}
        assert tenancy.county_settings(session, 1)["case_flow"] == cases.DIRECT_DISPATCH  # not flushed yet
        session.rollback()
    assert _open("o_settings_4") == cases.DEPUTY_FIRST


def test_a_change_by_sql_is_believed_after_forgetting_the_cache(demo_db):
    """What another process writes (here: plain SQL, which the ORM does not see) waits for the TTL;
    forgetting the cache stands for its expiry."""
    assert _open("o_settings_5") == cases.DEPUTY_FIRST
    with db.session_scope() as session:
        session.execute(update(County).where(County.id == 1).values(settings={"case_flow": cases.DIRECT_DISPATCH}))
    assert _open("o_settings_6") == cases.DEPUTY_FIRST  # kept: no counties row read for this case
    tenancy.forget_county_settings()
    assert _open("o_settings_7") == cases.DIRECT_DISPATCH
