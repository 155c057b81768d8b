"""Keep openids out of logs."""

from __future__ import annotations

import hashlib


def mask(openid: str | None) -> str:
    """A short, stable, non-reversible tag for an openid, safe to log: ``oid:1a2b3c4d5e``.

    The same openid always gives the same tag (so log lines can be correlated) but the openid itself
    never appears.
    """
    if not openid:
        return "oid:-"
    digest = hashlib.sha256(openid.encode("utf-8")).hexdigest()
    return f"oid:{digest[:10]}"


def mask_many(openids) -> str:
    """``3 openids [oid:…, oid:…, …]`` (at most 3 shown)."""
    openids = list(openids)
    shown = ", ".join(mask(o) for o in openids[:3])
    more = ", …" if len(openids) > 3 else ""
    return f"{len(openids)} openids [{shown}{more}]"
