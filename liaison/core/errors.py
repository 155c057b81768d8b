"""The one base class of every refusal the domain gives a caller.

A domain error says *what kind* of refusal it is, never an HTTP status: the API framework maps each
kind to a status in one place (`miniprogram_api.framework.DOMAIN_ERROR_STATUS`), the console and the
CLI map it their own way. `message` is Chinese and may be shown to the person who acted; `code` is a
stable machine-readable name; `field` names the offending input where there is one.
"""
from __future__ import annotations

# The kinds a refusal can be. Adding one means adding its HTTP status in the API framework.
INVALID = "invalid"          # the input is malformed or out of range (422)
NOT_FOUND = "not_found"      # it does not exist, or not for this caller (404)
FORBIDDEN = "forbidden"      # the caller sees it but may not do this (403)
CONFLICT = "conflict"        # the state does not allow it now, or it was done already (409)
TOO_LARGE = "too_large"      # an upload or a batch beyond the limits (413)
UNSUPPORTED = "unsupported"  # an upload of a type that is not accepted (415)
RATE_LIMITED = "rate_limited"  # too many attempts in a window (429)
UNAVAILABLE = "unavailable"  # a dependency (database, queue) is down: try again later (503)

KINDS = (INVALID, NOT_FOUND, FORBIDDEN, CONFLICT, TOO_LARGE, UNSUPPORTED, RATE_LIMITED, UNAVAILABLE)


class DomainError(Exception):
    """A refusal: `kind` (one of KINDS), `code`, a Chinese `message` and optionally `field`.

    Subclasses set the class attributes `kind` and `code` as their defaults; an instance may
    override both.
    """

    kind: str = INVALID
    code: str = "invalid"

    def __init__(self, message: str = "", *, code: str | None = None, kind: str | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"unknown domain error kind {kind!r}")
            self.kind = kind
        self.field = field


class Refusal(DomainError):
    """A DomainError raised with its kind and code up front: `Refusal(kind, code, message, field=None)`
    (the form of the engagement and registry services' refusals)."""

    def __init__(self, kind: str, code: str, message: str, field: str | None = None):
        super().__init__(message, code=code, kind=kind, field=field)
