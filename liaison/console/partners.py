"""The console's page of Open311 partner keys and hand-off targets (直通车): county staff only.

Everything done here is `liaison.interop.service`'s; this module decides who may (county staff,
not a station's staff, not a deputy) and what the page shows: a partner key and a target's callback
secret are shown once, when made; lists show only a key's prefix and never the key a target gave us.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from classifiers import get_routing_config
from liaison.core.errors import FORBIDDEN, INVALID, DomainError
from liaison.interop import service as interop
from liaison.interop.models import HandoffTarget
from liaison.people.service import STAFF, Principal

COUNTY_STAFF_ONLY = "只有县级工委账号可以管理对接密钥和转办平台"
EVERY_CATEGORY = "其他所有类别"


class NotCountyStaff(DomainError):
    kind = FORBIDDEN
    code = "county_staff_only"

    def __init__(self):
        super().__init__(COUNTY_STAFF_ONLY)


def require_county_staff(principal: Principal) -> None:
    if principal.role != STAFF or principal.account.station_id is not None:
        raise NotCountyStaff()


@dataclass(frozen=True)
class Shown:
    """What the page shows once: a new partner key or a target's (new) callback secret."""

    what: str
    name: str
    secret: str


def categories() -> list[str]:
    return list(get_routing_config().categories)


def overview(session: Session, principal: Principal) -> dict[str, Any]:
    require_county_staff(principal)
    partners = [{"id": p.public_id, "name": p.name, "prefix": p.key_prefix, "created_at": p.created_at,
                 "active": p.revoked_at is None} for p in interop.partners(session)]
    targets = [_target_row(t) for t in interop.targets(session)]
    return {"partners": partners, "targets": targets}


def _target_row(target: HandoffTarget) -> dict[str, Any]:
    return {"id": target.id, "name": target.name, "category": target.category or EVERY_CATEGORY,
            "endpoint": target.endpoint, "service_code": target.service_code or "—",
            "jurisdiction_id": target.jurisdiction_id or "—", "active": target.removed_at is None,
            "callback": bool(target.callback_secret)}


def issue_key(session: Session, principal: Principal, name: str) -> Shown:
    require_county_staff(principal)
    partner, key = interop.issue_key(session, name, created_by=principal.account.id)
    return Shown("api_key", partner.name, key)


def revoke_key(session: Session, principal: Principal, public_id: str) -> str:
    require_county_staff(principal)
    return interop.revoke_key(session, public_id).name


def set_target(session: Session, principal: Principal, *, name: str, endpoint: str, api_key: str,
               category: str | None, service_code: str | None, jurisdiction_id: str | None) -> Shown | None:
    """Set a target; its callback secret is shown when the target is new (kept when set again)."""
    require_county_staff(principal)
    if not endpoint.strip().startswith(("http://", "https://")):
        raise DomainError("地址须以 http:// 或 https:// 开头，指向对方的 Open311 接口（…/open311/v2）",
                          kind=INVALID, code="invalid", field="endpoint")
    known = {t.id for t in interop.targets(session)}
    target = interop.set_target(session, name.strip(), endpoint.strip(), api_key.strip(),
                                category=category or None, service_code=service_code or None,
                                jurisdiction_id=jurisdiction_id or None)
    return None if target.id in known else Shown("callback_secret", target.name, target.callback_secret)


def rotate_secret(session: Session, principal: Principal, target_id: int) -> Shown:
    require_county_staff(principal)
    target = interop.rotate_callback_secret(session, target_id)
    return Shown("callback_secret", target.name, target.callback_secret)


def remove_target(session: Session, principal: Principal, target_id: int) -> str:
    require_county_staff(principal)
    return interop.remove_target(session, target_id).name
