"""Who may use the Open311 interface: a partner key, hashed at rest, scoped to its county.

Every call but discovery and the service list needs a live partner key; the key's county is the only
county the call sees (another county's requests answer 404, as if they did not exist).
"""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from liaison.core import tenant
from liaison.core.errors import FORBIDDEN, DomainError
from liaison.interop.models import Partner

KEY_PREFIX = "o311_"


class BadKey(DomainError):
    """No key, an unknown key or a revoked one (the caller is not told which)."""

    kind = FORBIDDEN
    code = "api_key_invalid"

    def __init__(self):
        super().__init__("api_key 无效或已停用")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def authenticate(session: Session, key: str | None) -> Partner:
    """The live partner holding `key`; the session is narrowed to that partner's county."""
    if not key or len(key) > 128:
        raise BadKey()
    with tenant.widened(session, tenant.all_counties("authenticate an Open311 partner key")):
        partner = session.scalar(select(Partner).where(Partner.key_hash == key_hash(key)))
    if partner is None or partner.revoked_at is not None:
        raise BadKey()
    tenant.switch(session, tenant.county(partner.county_id))
    return partner
