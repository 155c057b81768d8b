"""Signing in to the office console: sign-in names, argon2id passwords set through one-time links,
and server-side sessions that end at once when the person signs out or the account is disabled.

Who may use the console: staff (county or one station) and deputies, who get the desk view read-only;
their scopes are exactly the API's (`liaison.case.access.scope_of`). Department handlers (`DESK_ROLES`)
sign in too, but only to the pages the console lists for them (the 代表建议 and 民生实事 handed to their
department, `console.views.DESK_PAGES`); cases they keep working in the mini-program.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from liaison.console.models import ConsoleCredential, ConsoleSession, PasswordLink
from liaison.core import ratelimit
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, RATE_LIMITED, DomainError
from liaison.people.models import Account
from liaison.people.service import DEPARTMENT, DEPUTY, STAFF, Principal

CONSOLE_ROLES = (STAFF, DEPUTY, DEPARTMENT)
DESK_ROLES = (DEPARTMENT,)  # signed in to the console's DESK_PAGES only
# Who may sign in: county staff, deputies and departments, and city staff (the 县（区） page of their
# city only).
SIGN_IN_ROLES = (*CONSOLE_ROLES, "city")
LINK_LIFETIME = timedelta(days=3)
SESSION_MAX_AGE = timedelta(hours=12)   # signed in at most a working day, then again
SESSION_IDLE = timedelta(minutes=30)    # a desk PC left alone
SEEN_GRANULARITY = timedelta(minutes=1)  # last_seen_at is written at most once a minute
MIN_PASSWORD = 10
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")

# argon2id with the library's RFC 9106 "low memory" profile defaults (argon2-cffi's PasswordHasher).
_hasher = PasswordHasher()
# Verified when the sign-in name is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class ConsoleAuthError(DomainError):
    """A refusal of the console's sign-in services (message in Chinese)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_login(login: str) -> str:
    """Sign-in names are lower-case ASCII: typed the same on every keyboard layout."""
    return (login or "").strip().lower()


def default_login(account: Account) -> str:
    return f"{account.role}{account.id}"


# ----------------------------------------------------------------------------------- credentials, links
def credential_of(session: Session, account: Account) -> ConsoleCredential | None:
    return session.get(ConsoleCredential, account.id)


def issue_password_link(session: Session, account: Account, *, login: str | None = None,
                        now: datetime | None = None) -> tuple[ConsoleCredential, str]:
    """A one-time token that lets the account set its console password (earlier links stop working).

    The account gets a sign-in name on its first link (`login`, default `<role><id>`). Returns the
    credential and the token to put in the link; only the token's hash is stored.
    """
    now = now or utcnow()
    if account.role not in SIGN_IN_ROLES:
        raise ConsoleAuthError("只有工委、代表、承办单位和市级账号可以使用办公台", code="role_not_allowed", kind=FORBIDDEN)
    if not account.active:
        raise ConsoleAuthError("账号已停用", code="account_disabled", kind=CONFLICT)
    credential = credential_of(session, account)
    if credential is None:
        name = normalise_login(login) if login else default_login(account)
        if not LOGIN_PATTERN.match(name):
            raise ConsoleAuthError("登录名应为 3–32 位小写字母、数字或 _ . -", code="invalid_login",
                                   kind=INVALID, field="login")
        if session.scalar(select(ConsoleCredential.account_id).where(ConsoleCredential.login == name)):
            raise ConsoleAuthError("该登录名已被使用", code="login_taken", kind=CONFLICT, field="login")
        credential = ConsoleCredential(account_id=account.id, login=name, created_at=now,
                                       county_id=account.county_id)
        session.add(credential)
    session.execute(update(PasswordLink).where(PasswordLink.account_id == account.id,
                                               PasswordLink.used_at.is_(None)).values(expires_at=now))
    token = secrets.token_urlsafe(32)
    session.add(PasswordLink(token_hash=_digest(token), account_id=account.id, created_at=now,
                             expires_at=now + LINK_LIFETIME, county_id=account.county_id))
    session.flush()
    return credential, token


def link_account(session: Session, token: str, *, now: datetime | None = None) -> Account:
    """The account a still-valid link is for (to greet them on the page); NotFound-like refusal else."""
    now = now or utcnow()
    row = session.scalar(select(PasswordLink).where(PasswordLink.token_hash == _digest(token or "")))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise ConsoleAuthError("链接无效或已过期，请联系工委重新获取", code="invalid_link", kind=NOT_FOUND)
    account = session.get(Account, row.account_id)
    if account is None or not account.active:
        raise ConsoleAuthError("链接无效或已过期，请联系工委重新获取", code="invalid_link", kind=NOT_FOUND)
    return account


def check_password_rules(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise ConsoleAuthError(f"密码至少 {MIN_PASSWORD} 位", code="weak_password", kind=INVALID,
                               field="password")


def set_password(session: Session, account: Account, password: str, *, now: datetime | None = None) -> None:
    """Store a new argon2id hash and end every session the account had (a reset locks others out)."""
    now = now or utcnow()
    check_password_rules(password)
    credential = credential_of(session, account)
    if credential is None:
        raise ConsoleAuthError("账号尚未开通办公台", code="no_credential", kind=CONFLICT)
    credential.password_hash = _hasher.hash(password)
    credential.password_set_at = now
    end_sessions_of(session, account, now=now)
    session.flush()


def redeem_password_link(session: Session, token: str, password: str, *,
                         now: datetime | None = None) -> Account:
    """Use a one-time link: set the password. A link works once (claimed atomically)."""
    now = now or utcnow()
    account = link_account(session, token, now=now)
    check_password_rules(password)
    claimed = session.execute(update(PasswordLink).where(
        PasswordLink.token_hash == _digest(token), PasswordLink.used_at.is_(None),
        PasswordLink.expires_at > now).values(used_at=now)).rowcount
    if not claimed:
        raise ConsoleAuthError("链接无效或已过期，请联系工委重新获取", code="invalid_link", kind=NOT_FOUND)
    set_password(session, account, password, now=now)
    return account


# ----------------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class SignedIn:
    """A console session: the cookie's token and who it is."""

    token: str
    account: Account


def sign_in(session: Session, login: str, password: str, *, address: str | None = None,
            now: datetime | None = None) -> SignedIn:
    """Check the name and password; start a session. One refusal message for every failure, so the
    page does not tell which names exist.

    Failed attempts are counted per sign-in name (known or not, so the lockout does not tell either)
    and per client `address` (`liaison.core.ratelimit`); past either limit the attempt is refused
    before the password is looked at, the right one too, until the window has passed."""
    now = now or utcnow()
    name = normalise_login(login)
    limits = [(ratelimit.CONSOLE_SIGN_IN_ACCOUNT, ("login", name))]
    if address:
        limits.append((ratelimit.CONSOLE_SIGN_IN_ADDRESS, ("address", address)))
    if not all(ratelimit.allowed(rule, *identity) for rule, identity in limits):
        raise ConsoleAuthError("登录失败次数过多，请 15 分钟后再试", code="rate_limited", kind=RATE_LIMITED)
    try:
        return _check_and_start(session, name, password, now)
    except ConsoleAuthError:
        for rule, identity in limits:
            ratelimit.hit(rule, *identity)
        raise


def _check_and_start(session: Session, name: str, password: str, now: datetime) -> SignedIn:
    refusal = ConsoleAuthError("登录名或密码错误", code="bad_credentials", kind=FORBIDDEN)
    credential = session.scalar(select(ConsoleCredential).where(ConsoleCredential.login == name))
    stored = credential.password_hash if credential is not None and credential.password_hash else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise refusal from None
    if stored is None:
        raise refusal
    account = credential.account
    if not account.active or account.role not in SIGN_IN_ROLES:
        raise refusal
    if _hasher.check_needs_rehash(stored):  # parameters raised since it was set
        credential.password_hash = _hasher.hash(password)
    token = secrets.token_urlsafe(32)
    session.add(ConsoleSession(token_hash=_digest(token), account_id=account.id, created_at=now,
                               last_seen_at=now, expires_at=now + SESSION_MAX_AGE,
                               county_id=account.county_id))
    session.flush()
    return SignedIn(token, account)


def principal_for(session: Session, token: str | None, *, now: datetime | None = None) -> Principal | None:
    """The principal a console session token stands for, or None when it ended, expired, went idle,
    or its account was disabled. Touches `last_seen_at` (the idle clock)."""
    if not token:
        return None
    now = now or utcnow()
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + SESSION_IDLE <= now:
        row.ended_at = now
        return None
    account = row.account
    if not account.active or account.role not in SIGN_IN_ROLES:
        return None
    if now - row.last_seen_at >= SEEN_GRANULARITY:
        row.last_seen_at = now
    return Principal(account.role, account=account)


def sign_out(session: Session, token: str | None, *, now: datetime | None = None) -> None:
    """End this browser's session."""
    if token:
        session.execute(update(ConsoleSession).where(ConsoleSession.token_hash == _digest(token),
                                                     ConsoleSession.ended_at.is_(None))
                        .values(ended_at=now or utcnow()))


def end_sessions_of(session: Session, account: Account, *, now: datetime | None = None) -> int:
    """End every console session of the account (password reset, account disabled)."""
    result = session.execute(update(ConsoleSession).where(ConsoleSession.account_id == account.id,
                                                          ConsoleSession.ended_at.is_(None))
                             .values(ended_at=now or utcnow()))
    return result.rowcount or 0


def disable_account(session: Session, account: Account, *, now: datetime | None = None) -> None:
    """停用: the account can no longer sign in anywhere; its console sessions end at once."""
    account.active = False
    end_sessions_of(session, account, now=now)
    session.flush()
