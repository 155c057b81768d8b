"""Mini-program identities: accounts and roles, binding codes, session tokens, idempotency keys and
notification consents.

Residents need no account: a mini-program login creates or links their `Resident` row (through the
unionid when WeChat gives one). Deputies, department handlers and liaison-office staff are registered by
staff as an `Account` and bind their WeChat identity once with a one-time binding code.

Flask-free: the API layer calls these services inside its own unit of work.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liaison.case.models import Case, CaseFollower, Rating
from liaison.core import tenant
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, DomainError
from liaison.core.types import Actor
from liaison.messaging.models import InboundMessage, OutboxMessage
from liaison.people.models import (
    Account,
    BindingCode,
    Department,
    Deputy,
    DeputyGrid,
    Grid,
    IdempotencyKey,
    NotificationConsent,
    Resident,
    Station,
)
from liaison.tenancy.models import County
from liaison.wechat.privacy import mask

log = logging.getLogger(__name__)

RESIDENT, DEPUTY, DEPARTMENT, STAFF = "resident", "deputy", "department", "staff"
ROLES = (RESIDENT, DEPUTY, DEPARTMENT, STAFF)
ACCOUNT_ROLES = (DEPUTY, DEPARTMENT, STAFF)
# City staff: figures of every county of their city; cases only where a county grants it. Not one of
# the county's account roles (county staff cannot register one; `create_city_staff` does).
CITY = "city"
ROLE_LABELS = {RESIDENT: "群众", DEPUTY: "人大代表", DEPARTMENT: "职能部门", STAFF: "人大工委", CITY: "市人大"}

BINDING_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud on the phone
BINDING_CODE_LENGTH = 10
BINDING_CODE_LIFETIME = timedelta(days=7)
TOKEN_SALT = "miniprogram-session"
CONSENT_RESULTS = ("accept", "reject", "ban", "filter")


# The kind of each AccountError code that is not a plain invalid input.
ACCOUNT_ERROR_KINDS = {"already_bound": CONFLICT, "already_bootstrapped": CONFLICT, "not_bindable": FORBIDDEN}


class AccountError(DomainError):
    """A service refused an account operation; `code` is the API error code, message is Chinese."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code, kind=ACCOUNT_ERROR_KINDS.get(code, INVALID))


# ---------------------------------------------------------------------------------------------- principals
@dataclass(frozen=True)
class Principal:
    """Who is calling the API: a resident or an account (deputy, department handler, staff)."""

    role: str
    resident: Resident | None = None
    account: Account | None = None

    @property
    def ref(self) -> str:
        """A stable string naming the caller (idempotency keys are scoped to it)."""
        if self.resident is not None:
            return f"resident:{self.resident.id}"
        return f"account:{self.account.id}"

    @property
    def name(self) -> str:
        return self.account.name if self.account is not None else "群众"

    def actor(self):
        """The `cases.Actor` for this caller (deputy and department act under their row ids)."""
        if self.role == RESIDENT:
            return Actor(RESIDENT, self.resident.id)
        if self.role == DEPUTY:
            return Actor(DEPUTY, self.account.deputy_id)
        if self.role == DEPARTMENT:
            return Actor(DEPARTMENT, self.account.department_id)
        return Actor(STAFF, self.account.id)


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(secret_key: str, principal: Principal) -> str:
    """A signed session token naming the principal by public id (never the openid)."""
    if principal.resident is not None:
        payload = {"k": "r", "id": principal.resident.public_id}
    else:
        # "g": the account's session generation; bumping it (re-binding, disabling, a role change)
        # ends every session issued before.
        payload = {"k": "a", "id": principal.account.public_id, "g": principal.account.session_generation or 0}
    return _serializer(secret_key).dumps(payload)


def _token_payload(secret_key: str, token: str, max_age: int) -> dict | None:
    """The signed payload of a well-formed, unexpired token (`k`: kind, `id`: public id), else None."""
    try:
        payload = _serializer(secret_key).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        return None
    return payload


def token_subject(secret_key: str, token: str, max_age: int) -> str | None:
    """`resident:PUBLIC_ID` or `account:PUBLIC_ID` for a well-signed, unexpired token, else None.

    From the signature alone (no database): rate limits key on it before the request does any work.
    """
    payload = _token_payload(secret_key, token, max_age)
    if payload is None:
        return None
    kind = {"r": "resident", "a": "account"}.get(payload.get("k"))
    return f"{kind}:{payload['id']}" if kind else None


def principal_from_token(session: Session, secret_key: str, token: str, max_age: int) -> Principal | None:
    """The principal a token names, or None when it is forged, expired, the account is gone or
    disabled, or its sessions were ended since the token was issued."""
    payload = _token_payload(secret_key, token, max_age)
    if payload is None:
        return None
    if payload.get("k") == "r":
        resident = session.scalar(select(Resident).where(Resident.public_id == payload["id"]))
        return Principal(RESIDENT, resident=resident) if resident is not None else None
    if payload.get("k") == "a":
        account = session.scalar(select(Account).where(Account.public_id == payload["id"]))
        if account is None or not account.active:
            return None
        if payload.get("g", 0) != account.session_generation:
            return None  # issued before the account was re-bound, disabled or changed role
        return Principal(account.role, account=account)
    return None


# ---------------------------------------------------------------------------------------------- login
def login(session: Session, openid: str, unionid: str | None = None) -> Principal:
    """The principal for a mini-program openid: a bound active account, else the resident (created or
    linked to the official-account resident through the unionid)."""
    account = session.scalar(select(Account).where(Account.mp_openid == openid))
    if account is not None and account.active:
        return Principal(account.role, account=account)
    for attempt in range(2):
        try:
            with session.begin_nested():
                resident = _link_resident(session, openid, unionid)
            return Principal(RESIDENT, resident=resident)
        except IntegrityError:
            # A concurrent first login created the row; the second pass finds it.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _link_resident(session: Session, openid: str, unionid: str | None) -> Resident:
    by_mp = session.scalar(select(Resident).where(Resident.mp_openid == openid))
    by_union = (session.scalar(select(Resident).where(Resident.unionid == unionid))
                if unionid else None)
    if by_union is not None and by_mp is not None and by_union.id != by_mp.id:
        log.info("linking mini-program resident %s onto resident %s by unionid", mask(openid),
                 by_union.public_id)
        merge_residents(session, source=by_mp, target=by_union)
        by_union.mp_openid = openid
        session.flush()
        return by_union
    if by_union is not None:
        if by_union.mp_openid != openid:
            by_union.mp_openid = openid
            session.flush()
        return by_union
    if by_mp is not None:
        if unionid and not by_mp.unionid:
            by_mp.unionid = unionid
            session.flush()
        return by_mp
    resident = Resident(mp_openid=openid, unionid=unionid, subscribed=False)
    session.add(resident)
    session.flush()
    log.info("new mini-program resident %s", mask(openid))
    return resident


def merge_residents(session: Session, *, source: Resident, target: Resident) -> None:
    """Move everything of `source` onto `target` (the same person seen through two apps), then delete
    `source`."""
    sid, tid = source.id, target.id
    session.execute(update(Case).where(Case.resident_id == sid).values(resident_id=tid))
    for follower in session.scalars(select(CaseFollower).where(CaseFollower.resident_id == sid)).all():
        if session.get(CaseFollower, (follower.case_id, tid)) is None:
            session.add(CaseFollower(case_id=follower.case_id, resident_id=tid,
                                     created_at=follower.created_at))
        session.delete(follower)
    for rating in session.scalars(select(Rating).where(Rating.resident_id == sid)).all():
        clash = session.scalar(select(Rating.id).where(
            Rating.case_id == rating.case_id, Rating.round == rating.round, Rating.resident_id == tid))
        if clash is None:
            rating.resident_id = tid
        else:
            session.delete(rating)
    session.execute(update(InboundMessage).where(InboundMessage.resident_id == sid)
                    .values(resident_id=tid))
    session.execute(update(OutboxMessage).where(OutboxMessage.resident_id == sid)
                    .values(resident_id=tid))
    for consent in session.scalars(select(NotificationConsent).where(
            NotificationConsent.resident_id == sid)).all():
        mine = session.scalar(select(NotificationConsent).where(
            NotificationConsent.resident_id == tid, NotificationConsent.template_id == consent.template_id))
        if mine is None:
            consent.resident_id = tid
        else:
            mine.credits += consent.credits
            mine.accepted_total += consent.accepted_total
            session.delete(consent)
    if target.grid_id is None:
        target.grid_id = source.grid_id
    source.mp_openid = None
    source.unionid = None
    session.flush()
    session.delete(source)
    session.flush()


def link_official_account(session: Session, resident: Resident, unionid: str | None) -> Resident:
    """An official-account resident's unionid is known: join them with their mini-program self."""
    if not unionid or resident.unionid == unionid:
        return resident
    other = session.scalar(select(Resident).where(Resident.unionid == unionid, Resident.id != resident.id))
    if other is not None:
        mp_openid = other.mp_openid
        log.info("linking mini-program resident %s onto official-account resident %s by unionid",
                 mask(mp_openid), resident.public_id)
        merge_residents(session, source=other, target=resident)
        resident.mp_openid = mp_openid
    resident.unionid = unionid
    session.flush()
    return resident


# ---------------------------------------------------------------------------------------------- accounts
def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode("utf-8")).hexdigest()


def new_binding_code(session: Session, account: Account, *, now: datetime | None = None) -> str:
    """Issue a one-time binding code for `account` (earlier unused codes stop working)."""
    now = now or utcnow()
    session.execute(update(BindingCode).where(BindingCode.account_id == account.id,
                                              BindingCode.used_at.is_(None)).values(expires_at=now))
    code = "".join(secrets.choice(BINDING_CODE_ALPHABET) for _ in range(BINDING_CODE_LENGTH))
    session.add(BindingCode(code_hash=_hash_code(code), account_id=account.id, created_at=now,
                            expires_at=now + BINDING_CODE_LIFETIME))
    session.flush()
    return code


def create_account(session: Session, role: str, name: str, *, deputy: Deputy | None = None,
                   department: Department | None = None, station: Station | None = None
                   ) -> tuple[Account, str]:
    """Register a deputy, department handler or staff account; returns it with its binding code."""
    if role not in ACCOUNT_ROLES:
        raise AccountError("invalid_role", "角色无效")
    if role == DEPUTY and deputy is None:
        raise AccountError("deputy_required", "代表账号需要指定代表")
    if role == DEPARTMENT and department is None:
        raise AccountError("department_required", "部门账号需要指定部门")
    account = Account(role=role, name=name.strip(),
                      deputy_id=deputy.id if role == DEPUTY else None,
                      department_id=department.id if role == DEPARTMENT else None,
                      station_id=station.id if role == STAFF and station is not None else None)
    session.add(account)
    session.flush()
    return account, new_binding_code(session, account)


def create_city_staff(session: Session, name: str, city_id: int) -> tuple[Account, str]:
    """A city staff account (role `city`) of city `city_id`, in the session's write county (the row
    must live somewhere; what it sees is the city's counties); returns it with its binding code."""
    if not name.strip():
        raise AccountError("name_required", "姓名不能为空")
    home = session.get(County, tenant.of(session).write_county or 0)
    if home is None or home.city_id != city_id:
        # The account row must stay visible to its own scope: it lives in one of the city's counties.
        raise AccountError("county_not_in_city", "市级账号须登记在本市所辖的县")
    account = Account(role=CITY, name=name.strip(), city_id=city_id)
    session.add(account)
    session.flush()
    return account, new_binding_code(session, account)


def create_first_staff(session: Session, name: str) -> tuple[Account, str]:
    """Bootstrap: the first county-wide staff account and its binding code (refused once one exists)."""
    if session.scalar(select(Account.id).where(Account.role == STAFF).limit(1)) is not None:
        raise AccountError("already_bootstrapped", "已存在工委账号，请由工委在小程序中登记")
    return create_account(session, STAFF, name)


def bind(session: Session, resident: Resident, code: str, *, now: datetime | None = None) -> Account:
    """Bind the caller's mini-program identity to the account the one-time code was issued for."""
    now = now or utcnow()
    openid = resident.mp_openid
    if not openid:
        raise AccountError("not_bindable", "请先通过小程序登录")
    row = session.scalar(select(BindingCode).where(BindingCode.code_hash == _hash_code(code)))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise AccountError("invalid_binding_code", "绑定码无效或已过期")
    # Claim the code atomically: two phones racing with one code, only one wins.
    claimed = session.execute(update(BindingCode).where(BindingCode.id == row.id,
                                                        BindingCode.used_at.is_(None))
                              .values(used_at=now)).rowcount
    if not claimed:
        raise AccountError("invalid_binding_code", "绑定码无效或已过期")
    account = session.get(Account, row.account_id)
    if account is None or not account.active:
        raise AccountError("invalid_binding_code", "绑定码无效或已过期")
    other = session.scalar(select(Account).where(Account.mp_openid == openid, Account.id != account.id))
    if other is not None:
        raise AccountError("already_bound", "该微信已绑定其他账号")
    account.mp_openid = openid
    account.bound_at = now
    session.flush()
    log.info("account %s bound to %s", account.public_id, mask(openid))
    return account


def set_active(session: Session, account: Account, active: bool) -> Account:
    """Disable (or enable again) an account. Disabling ends its sessions at once: the account's
    session generation moves on (see `Account`), so every token issued before is refused."""
    account.active = active
    session.flush()
    log.info("account %s %s", account.public_id, "enabled" if active else "disabled")
    return account


# ---------------------------------------------------------------------------------------------- scope
def staff_grid_ids(session: Session, account: Account) -> list[int] | None:
    """The grids a staff account may see; None means the whole county."""
    if account.station_id is None:
        return None
    return list(session.scalars(select(Grid.id).where(Grid.station_id == account.station_id)))


def station_deputy_ids(station_id: int) -> Select:
    """SELECT of the deputies of a station: registered there, or serving one of its grids."""
    station_grids = select(Grid.id).where(Grid.station_id == station_id)
    return select(Deputy.id).where(or_(
        Deputy.station_id == station_id,
        Deputy.id.in_(select(DeputyGrid.deputy_id).where(DeputyGrid.grid_id.in_(station_grids)))))


def staff_account_condition(account: Account) -> ColumnElement[bool]:
    """The accounts a staff member manages: every account for county staff; for a station's staff, the
    station's own staff accounts and its deputies' accounts (department handlers are the county's)."""
    if account.station_id is None:
        return true()
    return or_(and_(Account.role == STAFF, Account.station_id == account.station_id),
               and_(Account.role == DEPUTY, Account.deputy_id.in_(station_deputy_ids(account.station_id))))


# ---------------------------------------------------------------------------------------------- idempotency
def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What a replay must match: the same method, path and body."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def reserve_idempotency_key(session: Session, principal_ref: str, key: str,
                            fingerprint: str) -> IdempotencyKey:
    """Insert the key in the caller's transaction before the action runs.

    A concurrent request with the same key blocks on the unique index (PostgreSQL) until this one
    commits and then fails with IntegrityError: the caller answers it with the stored response.
    """
    row = IdempotencyKey(principal=principal_ref, key=key, request_hash=fingerprint)
    session.add(row)
    session.flush()
    return row


def stored_idempotent_response(session: Session, principal_ref: str, key: str) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(IdempotencyKey.principal == principal_ref,
                                                       IdempotencyKey.key == key))


def purge_idempotency_keys(session: Session, older_than: timedelta = timedelta(days=2)) -> int:
    """Forget stored answers older than `older_than` (for a periodic sweep)."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - older_than))
    return result.rowcount or 0


# ---------------------------------------------------------------------------------------------- consents
def record_consents(session: Session, principal: Principal, results: dict[str, str]) -> list[NotificationConsent]:
    """Store the results of wx.requestSubscribeMessage; every "accept" adds one message credit."""
    rows = []
    for template_id, result in sorted(results.items()):
        if result not in CONSENT_RESULTS:
            raise AccountError("invalid_consent", f"订阅结果无效：{result}")
        owner = ({"resident_id": principal.resident.id} if principal.resident is not None
                 else {"account_id": principal.account.id})
        column = (NotificationConsent.resident_id if principal.resident is not None
                  else NotificationConsent.account_id)
        row = session.scalar(select(NotificationConsent).where(
            column == next(iter(owner.values())), NotificationConsent.template_id == template_id)
            .with_for_update())
        if row is None:
            row = NotificationConsent(template_id=template_id, credits=0, accepted_total=0, **owner)
            session.add(row)
        row.last_result = result
        row.updated_at = utcnow()
        if result == "accept":
            row.credits += 1
            row.accepted_total += 1
        elif result == "ban":
            row.credits = 0  # the user switched the template off for good
        rows.append(row)
    session.flush()
    return rows


def consents_of(session: Session, principal: Principal) -> list[NotificationConsent]:
    column = (NotificationConsent.resident_id if principal.resident is not None
              else NotificationConsent.account_id)
    owner_id = principal.resident.id if principal.resident is not None else principal.account.id
    return list(session.scalars(select(NotificationConsent).where(column == owner_id)
                                .order_by(NotificationConsent.template_id)))


def spend_consent(session: Session, *, template_id: str, resident_id: int | None = None,
                  account_id: int | None = None) -> bool:
    """Use one message credit (for the notification planner); False when none is left."""
    column = NotificationConsent.resident_id if resident_id is not None else NotificationConsent.account_id
    owner = resident_id if resident_id is not None else account_id
    result = session.execute(update(NotificationConsent).where(
        column == owner, NotificationConsent.template_id == template_id,
        NotificationConsent.credits > 0).values(credits=NotificationConsent.credits - 1))
    return bool(result.rowcount)


