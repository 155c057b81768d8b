"""Where kept media live: one small interface, two backends chosen by `MEDIA_STORAGE`.

- `LocalStorage` (the embedded default): files under `MEDIA_LOCAL_DIR`. Handlers get a URL of the app
  itself (`/media/<token>`), signed with the deployment's secret key, naming the media file and the
  account it was issued to and expiring after `MEDIA_URL_TTL_SECONDS`; the app re-checks the case's
  access rule for that account when the URL is fetched.
- `S3Storage`: any S3-compatible object store (MinIO, AWS) through boto3; handlers get S3 presigned
  URLs with the same lifetime.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Protocol

LOCAL_URL_PREFIX = "/media/"


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def url(self, key: str, *, media_public_id: str, viewer: str, content_type: str | None) -> str: ...


class LocalStorage:
    def __init__(self, folder: str, secret_key: str, ttl_seconds: int):
        self.folder = Path(folder)
        self.secret_key = secret_key
        self.ttl_seconds = ttl_seconds

    def _path(self, key: str) -> Path:
        path = (self.folder / key).resolve()
        if self.folder.resolve() not in path.parents:
            raise ValueError("media key outside the media folder")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, path)  # never a half-written file under the final name

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def url(self, key: str, *, media_public_id: str, viewer: str, content_type: str | None) -> str:
        return LOCAL_URL_PREFIX + sign(self.secret_key, media_public_id, viewer,
                                       int(time.time()) + self.ttl_seconds)


class S3Storage:
    def __init__(self, bucket: str, *, endpoint_url: str | None, region: str, access_key: str | None,
                 secret_key: str | None, ttl_seconds: int):
        import boto3  # only an S3 deployment needs boto3 loaded (the embedded default never does)
        from botocore.config import Config

        self.bucket = bucket
        self.ttl_seconds = ttl_seconds
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(signature_version="s3v4", connect_timeout=3, read_timeout=20,
                          retries={"max_attempts": 3}, s3={"addressing_style": "path"}))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def url(self, key: str, *, media_public_id: str, viewer: str, content_type: str | None) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.ttl_seconds)


def from_settings(settings) -> Storage:
    if settings.media_storage == "s3":
        return S3Storage(settings.media_s3_bucket, endpoint_url=settings.media_s3_endpoint_url,
                         region=settings.media_s3_region, access_key=settings.media_s3_access_key,
                         secret_key=settings.media_s3_secret_key, ttl_seconds=settings.media_url_ttl_seconds)
    return LocalStorage(settings.media_local_dir, settings.secret_key, settings.media_url_ttl_seconds)


_cached: tuple[int, Storage] | None = None


def current() -> Storage:
    """This process's storage, built once from the runtime's settings."""
    global _cached
    from liaison import runtime  # runtime wires the process after the domain modules are imported

    settings = runtime.current().settings
    if _cached is None or _cached[0] != id(settings):
        _cached = (id(settings), from_settings(settings))
    return _cached[1]


# --- the local backend's signed URLs ------------------------------------------------------------
def _mac(secret_key: str, message: str) -> str:
    digest = hmac.new(("media:" + secret_key).encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def sign(secret_key: str, media_public_id: str, viewer: str, expires: int) -> str:
    """`<media>.<viewer>.<expires>.<mac>`: the viewer is the principal's ref (who the URL was issued to)."""
    message = f"{media_public_id}.{viewer}.{expires}"
    return f"{message}.{_mac(secret_key, message)}"


def verify(secret_key: str, token: str, now: float | None = None) -> tuple[str, str] | None:
    """(media public id, viewer) of a valid, unexpired token, else None."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    media_public_id, viewer, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(secret_key, f"{media_public_id}.{viewer}.{expires}")):
        return None
    if int(expires) < (time.time() if now is None else now):
        return None
    return media_public_id, viewer
