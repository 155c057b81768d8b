"""The one settings loader: every process (web, worker, scheduler, CLI) reads its configuration here.

Names are exactly the environment variables a deployment sets. A missing or malformed required
setting stops start-up with a `SettingsError` that names it.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'liaison.sqlite3'}"
WECHAT_DEFAULT_API_BASE_URL = "https://api.weixin.qq.com"


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration. `database_url`/`redis_url` decide embedded versus production mode."""

    secret_key: str
    wechat_token: str
    wechat_app_id: str
    wechat_app_secret: str
    database_url: str = DEFAULT_SQLITE_URL
    redis_url: str | None = None
    wechat_encoding_aes_key: str | None = None
    wechat_previous_encoding_aes_key: str | None = None
    wechat_api_base_url: str = WECHAT_DEFAULT_API_BASE_URL
    # Plaintext pushes are signed only over (token, timestamp, nonce), never over the body: accepted
    # only where this is set on purpose (tests, a demo), never in production.
    wechat_allow_plaintext: bool = False
    miniprogram_app_id: str | None = None
    miniprogram_app_secret: str | None = None
    # Tunables with field defaults; documented in the README.
    webhook_max_body_bytes: int = 64 * 1024
    api_max_body_bytes: int = 8 * 1024 * 1024
    webhook_max_clock_skew_seconds: int = 300
    message_join_window_seconds: int = 600
    session_token_max_age_seconds: int = 7 * 24 * 3600
    # Rate limits (`limits` notation, several separated by ";"), documented in the README.
    case_rate_limit_per_resident: str = "5 per minute;20 per day"
    case_rate_limit_per_address: str = "30 per minute"
    binding_failure_limit_per_resident: str = "5 per 15 minutes"
    binding_failure_limit_per_address: str = "20 per 15 minutes"
    # Failed console sign-ins; past the limit even the right password waits out the window.
    console_sign_in_limit_per_account: str = "5 per 15 minutes"
    console_sign_in_limit_per_address: str = "20 per 15 minutes"
    # /metrics: answered only with this bearer token (unset: not served); figures cached this long.
    metrics_token: str | None = None
    metrics_cache_seconds: int = 15
    # Open311 (/open311/v2): calls per partner key; how long a hand-off waits for its target.
    open311_rate_limit_per_partner: str = "60 per minute;5000 per day"
    handoff_timeout_seconds: int = 10
    # How long a call to the WeChat API may take to answer before it counts as timed out (read timeout).
    wechat_api_timeout_seconds: float = 10.0
    # Chat photos and voice kept (issue 15): "local" (a folder, the embedded default) or "s3".
    media_storage: str = "local"
    media_local_dir: str = "var/media"
    media_s3_bucket: str | None = None
    media_s3_endpoint_url: str | None = None  # MinIO or any S3 API; unset: AWS
    media_s3_region: str = "us-east-1"
    media_s3_access_key: str | None = None  # unset: boto3's own credential chain
    media_s3_secret_key: str | None = None
    media_url_ttl_seconds: int = 300  # signed media URLs given to handlers
    media_upload_max_bytes: int = 5 * 1024 * 1024  # one photo a handler attaches to 答复/办结

    # This deployment's public base URL (https://host): a hand-off is filed with a signed status
    # callback under it (attribute[callback_url]); unset: targets are only polled.
    public_base_url: str | None = None

    # A unit of work that names no county runs in the default county (one county per deployment).
    # A multi-county deployment sets LIAISON_IMPLICIT_DEFAULT_COUNTY=false: such work then fails
    # loudly instead of landing in county 1. The embedded SQLite default is always single-county.
    implicit_default_county: bool = True

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs run on an in-process queue."""
        return self.redis_url is None

    @property
    def wechat_encrypted(self) -> bool:
        return bool(self.wechat_encoding_aes_key)


def _require(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    return value or None


def _check_aes_key(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 43:
        raise SettingsError(f"{name} must be 43 characters (WeChat EncodingAESKey), got {len(value)}")
    try:
        if len(base64.b64decode(value + "=", validate=True)) != 32:
            raise ValueError
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} is not valid base64 for a 32-byte key") from None
    return value


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme.split("+")[0] not in schemes or not (parsed.netloc or parsed.path):
        raise SettingsError(f"{name} is malformed: expected a {'/'.join(schemes)} URL")
    return value


def _public_base_url(env: Mapping[str, str]) -> str | None:
    raw = _optional(env, "PUBLIC_BASE_URL")
    return _check_url("PUBLIC_BASE_URL", raw.rstrip("/"), ("http", "https")) if raw else None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = _optional(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    from limits import parse_many

    value = _optional(env, name) or default
    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(f"{name} is malformed: expected e.g. '5 per minute;20 per day', got {value!r}") from None
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    database_url = _optional(env, "DATABASE_URL") or DEFAULT_SQLITE_URL
    if database_url.startswith("postgres://"):  # Heroku-style alias SQLAlchemy does not accept
        database_url = "postgresql://" + database_url[len("postgres://"):]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    _check_url("DATABASE_URL", database_url, ("sqlite", "postgresql"))
    redis_url = _optional(env, "REDIS_URL")
    if redis_url is not None:
        _check_url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))
    base_url = (_optional(env, "WECHAT_API_BASE_URL") or WECHAT_DEFAULT_API_BASE_URL).rstrip("/")
    _check_url("WECHAT_API_BASE_URL", base_url, ("http", "https"))
    mp_id, mp_secret = _optional(env, "MINIPROGRAM_APP_ID"), _optional(env, "MINIPROGRAM_APP_SECRET")
    if bool(mp_id) != bool(mp_secret):
        raise SettingsError("MINIPROGRAM_APP_ID and MINIPROGRAM_APP_SECRET must be set together")
    return Settings(
        secret_key=_require(env, "SECRET_KEY"),
        wechat_token=_require(env, "WECHAT_TOKEN"),
        wechat_app_id=_require(env, "WECHAT_APP_ID"),
        wechat_app_secret=_require(env, "WECHAT_APP_SECRET"),
        database_url=database_url,
        redis_url=redis_url,
        wechat_encoding_aes_key=_check_aes_key(
            "WECHAT_ENCODING_AES_KEY", _optional(env, "WECHAT_ENCODING_AES_KEY")),
        wechat_previous_encoding_aes_key=_check_aes_key(
            "WECHAT_PREVIOUS_ENCODING_AES_KEY", _optional(env, "WECHAT_PREVIOUS_ENCODING_AES_KEY")),
        wechat_api_base_url=base_url,
        wechat_allow_plaintext=_bool(env, "WECHAT_ALLOW_PLAINTEXT"),
        miniprogram_app_id=mp_id,
        miniprogram_app_secret=mp_secret,
        webhook_max_body_bytes=_int(env, "WEBHOOK_MAX_BODY_BYTES", 64 * 1024),
        api_max_body_bytes=_int(env, "API_MAX_BODY_BYTES", 8 * 1024 * 1024),
        webhook_max_clock_skew_seconds=_int(env, "WEBHOOK_MAX_CLOCK_SKEW_SECONDS", 300),
        message_join_window_seconds=_int(env, "MESSAGE_JOIN_WINDOW_SECONDS", 600),
        session_token_max_age_seconds=_int(env, "SESSION_TOKEN_MAX_AGE_SECONDS", 7 * 24 * 3600),
        case_rate_limit_per_resident=_rate_limit(env, "CASE_RATE_LIMIT_PER_RESIDENT", Settings.case_rate_limit_per_resident),
        case_rate_limit_per_address=_rate_limit(env, "CASE_RATE_LIMIT_PER_ADDRESS", Settings.case_rate_limit_per_address),
        binding_failure_limit_per_resident=_rate_limit(
            env, "BINDING_FAILURE_LIMIT_PER_RESIDENT", Settings.binding_failure_limit_per_resident),
        binding_failure_limit_per_address=_rate_limit(
            env, "BINDING_FAILURE_LIMIT_PER_ADDRESS", Settings.binding_failure_limit_per_address),
        console_sign_in_limit_per_account=_rate_limit(
            env, "CONSOLE_SIGN_IN_LIMIT_PER_ACCOUNT", Settings.console_sign_in_limit_per_account),
        console_sign_in_limit_per_address=_rate_limit(
            env, "CONSOLE_SIGN_IN_LIMIT_PER_ADDRESS", Settings.console_sign_in_limit_per_address),
        metrics_token=_optional(env, "METRICS_TOKEN"),
        metrics_cache_seconds=_int(env, "METRICS_CACHE_SECONDS", 15),
        open311_rate_limit_per_partner=_rate_limit(
            env, "OPEN311_RATE_LIMIT_PER_PARTNER", Settings.open311_rate_limit_per_partner),
        handoff_timeout_seconds=_int(env, "HANDOFF_TIMEOUT_SECONDS", 10),
        wechat_api_timeout_seconds=float(_int(env, "WECHAT_API_TIMEOUT_SECONDS", 10)),
        **_media_settings(env),
        public_base_url=_public_base_url(env),
        implicit_default_county=(database_url.startswith("sqlite")
                                 or _bool(env, "LIAISON_IMPLICIT_DEFAULT_COUNTY", True)),
    )


def _media_settings(env: Mapping[str, str]) -> dict:
    """MEDIA_STORAGE=local|s3 and its backend's settings (S3 needs MEDIA_S3_BUCKET)."""
    storage = (_optional(env, "MEDIA_STORAGE") or "local").lower()
    if storage not in ("local", "s3"):
        raise SettingsError("MEDIA_STORAGE must be local or s3")
    bucket = _optional(env, "MEDIA_S3_BUCKET")
    if storage == "s3" and not bucket:
        raise SettingsError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET")
    endpoint = _optional(env, "MEDIA_S3_ENDPOINT_URL")
    if endpoint is not None:
        _check_url("MEDIA_S3_ENDPOINT_URL", endpoint, ("http", "https"))
    return {
        "media_storage": storage,
        "media_local_dir": _optional(env, "MEDIA_LOCAL_DIR") or Settings.media_local_dir,
        "media_s3_bucket": bucket,
        "media_s3_endpoint_url": endpoint,
        "media_s3_region": _optional(env, "MEDIA_S3_REGION") or Settings.media_s3_region,
        "media_s3_access_key": _optional(env, "MEDIA_S3_ACCESS_KEY"),
        "media_s3_secret_key": _optional(env, "MEDIA_S3_SECRET_KEY"),
        "media_url_ttl_seconds": _int(env, "MEDIA_URL_TTL_SECONDS", 300),
        "media_upload_max_bytes": _int(env, "MEDIA_UPLOAD_MAX_BYTES", 5 * 1024 * 1024),
    }
