"""Console sign-in: one-time password links, argon2id hashes, sessions that end at once."""
from __future__ import annotations

from datetime import timedelta

import pytest

from liaison.console import auth
from liaison.console.models import ConsoleCredential
from liaison.core import clock
from liaison.core.clock import utcnow
from liaison.people import service as people


@pytest.fixture
def staff(db_session):
    account, _code = people.create_account(db_session, people.STAFF, "县人大工委 王主任")
    return account


def test_a_link_sets_an_argon2id_password_once(db_session, staff):
    credential, token = auth.issue_password_link(db_session, staff, login="Wang")
    assert credential.login == "wang" and credential.password_hash is None
    auth.redeem_password_link(db_session, token, "correct horse battery")
    stored = db_session.get(ConsoleCredential, staff.id).password_hash
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    with pytest.raises(auth.ConsoleAuthError) as refused:
        auth.redeem_password_link(db_session, token, "another long password")
    assert refused.value.kind == "not_found"
    assert auth.sign_in(db_session, "WANG", "correct horse battery").account.id == staff.id


def test_a_new_link_voids_the_old_one_and_short_passwords_are_refused(db_session, staff):
    _credential, old = auth.issue_password_link(db_session, staff)
    _credential, new = auth.issue_password_link(db_session, staff)
    with pytest.raises(auth.ConsoleAuthError):
        auth.link_account(db_session, old)
    with pytest.raises(auth.ConsoleAuthError) as weak:
        auth.redeem_password_link(db_session, new, "short")
    assert weak.value.kind == "invalid"
    assert auth.link_account(db_session, new).id == staff.id  # still usable after the refusal


def test_wrong_passwords_and_unknown_names_get_one_answer(db_session, staff):
    _credential, token = auth.issue_password_link(db_session, staff, login="wang")
    auth.redeem_password_link(db_session, token, "correct horse battery")
    messages = set()
    for login, password in (("wang", "wrong password!"), ("nobody", "correct horse battery")):
        with pytest.raises(auth.ConsoleAuthError) as refused:
            auth.sign_in(db_session, login, password)
        messages.add(refused.value.message)
    assert messages == {"登录名或密码错误"}


def test_department_accounts_sign_in_to_the_desk_and_residents_never(db_session):
    """A department handler signs in (the console limits it to its DESK_PAGES); no other role may."""
    from sqlalchemy import select

    from liaison.people.models import Department

    department = db_session.scalar(select(Department).limit(1))
    account, _ = people.create_account(db_session, people.DEPARTMENT, "住建局 李科长", department=department)
    _credential, token = auth.issue_password_link(db_session, account, login="zhujian.li")
    auth.redeem_password_link(db_session, token, "correct horse battery")
    done = auth.sign_in(db_session, "zhujian.li", "correct horse battery")
    assert auth.principal_for(db_session, done.token).role == people.DEPARTMENT
    assert people.DEPARTMENT in auth.DESK_ROLES and people.STAFF not in auth.DESK_ROLES
    from liaison.people.models import Account

    other = Account(role="resident", name="不是办公台的角色")
    db_session.add(other)
    db_session.flush()
    with pytest.raises(auth.ConsoleAuthError) as refused:
        auth.issue_password_link(db_session, other)
    assert refused.value.kind == "forbidden"


def _signed_in(db_session, staff):
    if auth.credential_of(db_session, staff) is None:
        _credential, token = auth.issue_password_link(db_session, staff)
        auth.redeem_password_link(db_session, token, "correct horse battery")
    return auth.sign_in(db_session, auth.credential_of(db_session, staff).login, "correct horse battery")


def test_signing_out_and_disabling_end_sessions_at_once(db_session, staff):
    first, second = _signed_in(db_session, staff), _signed_in(db_session, staff)
    assert auth.principal_for(db_session, first.token).account.id == staff.id
    auth.sign_out(db_session, first.token)
    assert auth.principal_for(db_session, first.token) is None
    assert auth.principal_for(db_session, second.token) is not None
    auth.disable_account(db_session, staff)
    assert auth.principal_for(db_session, second.token) is None
    with pytest.raises(auth.ConsoleAuthError):
        auth.sign_in(db_session, auth.credential_of(db_session, staff).login, "correct horse battery")


def test_sessions_expire_when_idle_and_after_the_working_day(db_session, staff):
    start = utcnow()
    try:
        clock.set_clock(lambda: start)
        idle = _signed_in(db_session, staff)
        busy = _signed_in(db_session, staff)
        moment = start
        step = auth.SESSION_IDLE - timedelta(minutes=5)
        while moment + step < start + auth.SESSION_MAX_AGE:
            moment += step
            assert auth.principal_for(db_session, busy.token, now=moment) is not None
        assert auth.principal_for(db_session, idle.token, now=moment) is None  # idle long ago
        assert auth.principal_for(db_session, busy.token, now=start + auth.SESSION_MAX_AGE) is None
    finally:
        clock.set_clock(None)


def test_a_password_reset_ends_the_old_sessions(db_session, staff):
    session = _signed_in(db_session, staff)
    _credential, token = auth.issue_password_link(db_session, staff)
    auth.redeem_password_link(db_session, token, "a brand new password")
    assert auth.principal_for(db_session, session.token) is None
