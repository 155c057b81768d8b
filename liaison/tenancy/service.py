"""Counties: add one, find one, and the scope a caller works in.

Adding a county is a row, not a deployment: `python manage.py county add CODE NAME` (or a console
page calling `add_county`) takes effect at once, with no restart.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.core import tenant
from liaison.core.errors import CONFLICT, INVALID, DomainError
from liaison.tenancy.models import County

CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
WECHAT_FIELDS = ("wechat_app_id", "wechat_app_secret", "wechat_token", "wechat_encoding_aes_key")


def add_county(session: Session, code: str, name: str, *, settings: dict[str, Any] | None = None,
               **wechat: str | None) -> County:
    """Register a county (its own official account optional: app id, secret, token, AES key)."""
    code, name = code.strip(), name.strip()
    if not CODE_PATTERN.match(code):
        raise DomainError("县编码只能包含字母、数字、下划线和连字符，最长 32 位", kind=INVALID, field="code")
    if not name:
        raise DomainError("县名称不能为空", kind=INVALID, field="name")
    unknown = set(wechat) - set(WECHAT_FIELDS)
    if unknown:
        raise ValueError(f"unknown county fields: {sorted(unknown)}")
    if session.scalar(select(County.id).where(County.code == code)) is not None:
        raise DomainError(f"县编码 {code} 已存在", kind=CONFLICT, code="county_exists", field="code")
    county = County(code=code, name=name, settings=settings or {}, **wechat)
    session.add(county)
    session.flush()
    return county


def by_code(session: Session, code: str) -> County | None:
    return session.scalar(select(County).where(County.code == code))


def by_app_id(session: Session, app_id: str) -> County | None:
    """The county whose own official account has `app_id` (the webhook per county, the token cache)."""
    return session.scalar(select(County).where(County.wechat_app_id == app_id))


def all_counties(session: Session) -> list[County]:
    return list(session.scalars(select(County).order_by(County.id)))


def setting(county: County, name: str, default: Any = None) -> Any:
    """A county's own setting (deadlines, flows, points standards), else the deployment's `default`."""
    return (county.settings or {}).get(name, default)


def scope_of(principal) -> tenant.Scope:
    """The scope of an authenticated API caller: the county of their account or resident row."""
    row = principal.account if principal.account is not None else principal.resident
    return tenant.county(row.county_id)
