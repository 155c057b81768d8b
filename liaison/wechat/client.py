"""The project's outbound WeChat client.

Why not wechatpy's client (see /work/shared/wechat/PLATFORM.md): it has no timeout, retries token errors
by unbounded recursion, knows no ``stable_token``, and several sub-APIs carry their own base URL. Here:

- every request goes to ``base_url`` + WeChat's path (one configurable base URL, default
  https://api.weixin.qq.com), with a timeout (connect 3 s, read 10 s by default);
- the access token comes from ``POST /cgi-bin/stable_token`` (never /cgi-bin/token) and is cached in a
  token store (``RedisTokenStore`` shared by processes, or ``MemoryTokenStore``);
- on 40001/40014/42001 the cached token is invalidated, refreshed once and the call retried ONCE;
- every failure raises ``WeChatAPIError`` (see errors.py for the classification).

Methods return WeChat's parsed JSON dict (errcode 0), except ``get_wxacode_unlimited`` (bytes) and
``msg_sec_check`` (the suggestion string). The mini-program APIs (``send_mini_subscribe``,
``get_wxacode_unlimited``, ``msg_sec_check``, ``jscode2session``) need a client built with the
mini-program's appid and secret.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote

import requests

from .errors import WeChatAPIError, WeChatNotSentError, WeChatTimeoutError, WeChatTransientError
from .privacy import mask, mask_many
from .tokens import MemoryTokenStore

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
DEFAULT_TIMEOUT = (3.0, 10.0)  # (connect, read) seconds

BATCH_TAG_MAX = 50
MASS_OPENIDS_MIN, MASS_OPENIDS_MAX = 2, 10000
QR_TEMP_MAX_SECONDS = 30 * 24 * 3600
WXACODE_SCENE_RE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")

# The API paths (with an access token) whose request left this process inside `watch_requests()`.
_requests_started: ContextVar[list[str] | None] = ContextVar("wechat_requests_started", default=None)


@contextmanager
def watch_requests() -> Iterator[list[str]]:
    """Collect the paths of the API requests (not token fetches) that start inside the block.

    A sender uses it to tell an error raised before its request left (nothing delivered: resend)
    from one raised while or after it was on the wire (WeChat may have delivered it).
    """
    started: list[str] = []
    token = _requests_started.set(started)
    try:
        yield started
    finally:
        _requests_started.reset(token)


def _note_request(path: str) -> None:
    started = _requests_started.get()
    if started is not None:
        started.append(path)


def thing_value(text: str, limit: int = 20) -> str:
    """Make text acceptable for a ``thing`` field of a subscription/template message:
    no line breaks, at most ``limit`` characters (clipped with an ellipsis)."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _wrap_data(data: Mapping[str, Any]) -> dict:
    """Accept ``{"thing1": "x"}`` or ``{"thing1": {"value": "x"}}``; WeChat wants the latter."""
    return {k: (dict(v) if isinstance(v, Mapping) else {"value": str(v)}) for k, v in data.items()}


class WeChatClient:
    def __init__(self, appid: str, secret: str, base_url: str = DEFAULT_BASE_URL, token_store=None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None):
        self.appid = appid
        self.secret = secret
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.token_store = token_store if token_store is not None else MemoryTokenStore()
        self.timeout = timeout
        self._own_session = session is None
        self.session = session or requests.Session()
        self._pid = os.getpid()

    def close(self) -> None:
        self.session.close()

    def _session(self) -> requests.Session:
        # RQ forks a process per job: never share pooled sockets of the parent with a child
        if self._own_session and os.getpid() != self._pid:
            self.session = requests.Session()
            self._pid = os.getpid()
        return self.session

    def __enter__(self) -> "WeChatClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def url(self, path: str) -> str:
        return self.base_url + path

    def _http(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
              raw_ok: bool = False) -> Any:
        """One HTTP exchange; returns the parsed JSON dict (or bytes when ``raw_ok`` and not JSON)."""
        headers = {}
        data = None
        if body is not None:
            # UTF-8, not \\u escapes: WeChat shows escaped text literally in some APIs
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            resp = self._session().request(method, self.url(path), params=params, data=data,
                                        headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            connect = isinstance(exc, requests.ConnectTimeout)
            log.warning("wechat %s %s timeout", path, "connect" if connect else "read")
            raise WeChatTimeoutError(None, f"{'connect' if connect else 'read'} timeout: {exc}", path=path,
                                     connect_timeout=connect) from exc
        except requests.RequestException as exc:
            log.warning("wechat %s connection error: %s", path, type(exc).__name__)
            raise WeChatTransientError(None, f"connection error: {exc}", path=path) from exc

        if resp.status_code != 200:
            log.warning("wechat %s HTTP %s", path, resp.status_code)
            raise WeChatAPIError.build(None, f"HTTP {resp.status_code}", http_status=resp.status_code, path=path)
        content = resp.content
        if raw_ok and not content.lstrip().startswith(b"{"):
            return content
        try:
            result = json.loads(content.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise WeChatAPIError(None, "invalid JSON in WeChat's answer", http_status=resp.status_code,
                                 path=path) from exc
        if not isinstance(result, dict):
            raise WeChatAPIError(None, "unexpected JSON in WeChat's answer", http_status=resp.status_code,
                                 path=path)
        errcode = result.get("errcode", 0)
        if errcode not in (0, None):
            try:
                errcode = int(errcode)
            except (TypeError, ValueError):
                pass
            log.info("wechat %s errcode=%s", path, errcode)
            raise WeChatAPIError.build(errcode, str(result.get("errmsg", "")), http_status=resp.status_code,
                                       path=path, response=result)
        return result

    def _fetch_token(self, force_refresh: bool = False) -> tuple[str, int]:
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": bool(force_refresh)}
        result = self._http("POST", "/cgi-bin/stable_token", body=body)
        token = result.get("access_token")
        if not token:
            raise WeChatAPIError(None, "stable_token answered without access_token",
                                 http_status=200, path="/cgi-bin/stable_token", response=result)
        log.info("wechat access token fetched for %s (force_refresh=%s)", self.appid, force_refresh)
        return token, int(result.get("expires_in", 7200))

    def get_access_token(self) -> str:
        return self.token_store.get_token(self._fetch_token)

    def _call(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
              raw_ok: bool = False) -> Any:
        """An API call with access_token; on a token error: invalidate, refresh once, retry ONCE."""
        token = self._token_for(path)
        try:
            _note_request(path)
            return self._http(method, path, params={**(params or {}), "access_token": token}, body=body,
                              raw_ok=raw_ok)
        except WeChatAPIError as exc:
            if not exc.is_token_error:
                raise
            log.info("wechat %s token error %s; refreshing and retrying once", path, exc.errcode)
            self.token_store.invalidate(token)
            token = self._token_for(path, bad_token=token)
        _note_request(path)
        return self._http(method, path, params={**(params or {}), "access_token": token}, body=body,
                          raw_ok=raw_ok)

    def _token_for(self, path: str, bad_token: str | None = None) -> str:
        """The access token for a call to `path`; any failure to get one is a WeChatNotSentError, since
        the call itself has not started (a stable_token read timeout must not read as "maybe sent")."""
        try:
            return self.token_store.get_token(self._fetch_token, bad_token=bad_token)
        except Exception as exc:
            errcode = exc.errcode if isinstance(exc, WeChatAPIError) else None
            http_status = exc.http_status if isinstance(exc, WeChatAPIError) else None
            log.warning("wechat %s not sent: no access token (%s)", path, type(exc).__name__)
            raise WeChatNotSentError(errcode, f"no access token: {type(exc).__name__}: {exc}",
                                     http_status=http_status, path=path) from exc

    # ------------------------------------------------------------------ official account messages
    def get_user_info(self, openid: str) -> dict:
        """A follower's profile (`unionid` only when the account is bound to an Open Platform account)."""
        return self._call("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": "zh_CN"})

    def send_custom_text(self, openid: str, content: str) -> dict:
        """Customer-service text (only inside the 48 h / 1 min window: 45015/45047 otherwise)."""
        log.debug("custom/send text to %s", mask(openid))
        return self._call("POST", "/cgi-bin/message/custom/send", body={
            "touser": openid, "msgtype": "text", "text": {"content": content}})

    def send_subscribe_bizsend(self, openid: str, template_id: str, data: Mapping[str, Any],
                               page: str | None = None, miniprogram: Mapping[str, str] | None = None) -> dict:
        """订阅通知 of the official account (43101 when the resident has not accepted the template)."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _wrap_data(data)}
        if page:
            body["page"] = page
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        log.debug("subscribe/bizsend %s to %s", template_id, mask(openid))
        return self._call("POST", "/cgi-bin/message/subscribe/bizsend", body=body)

    def send_template(self, openid: str, template_id: str, data: Mapping[str, Any], url: str | None = None,
                      client_msg_id: str | None = None, miniprogram: Mapping[str, str] | None = None) -> dict:
        """Template message; ``client_msg_id`` makes the send idempotent for 10 minutes."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _wrap_data(data)}
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        log.debug("template/send %s to %s", template_id, mask(openid))
        return self._call("POST", "/cgi-bin/message/template/send", body=body)

    def mass_send_by_openids(self, openids: Iterable[str], content: str, clientmsgid: str) -> dict:
        """Mass text to 2..10,000 openids (each follower gets at most 4 mass messages a month)."""
        openids = list(openids)
        if not MASS_OPENIDS_MIN <= len(openids) <= MASS_OPENIDS_MAX:
            raise ValueError(f"mass send by openids needs {MASS_OPENIDS_MIN}..{MASS_OPENIDS_MAX} openids, "
                             f"got {len(openids)}")
        log.debug("mass/send to %s", mask_many(openids))
        return self._call("POST", "/cgi-bin/message/mass/send", body={
            "touser": openids, "msgtype": "text", "text": {"content": content}, "clientmsgid": clientmsgid})

    def mass_send_by_tag(self, tag_id: int, content: str, clientmsgid: str) -> dict:
        return self._call("POST", "/cgi-bin/message/mass/sendall", body={
            "filter": {"is_to_all": False, "tag_id": tag_id}, "msgtype": "text",
            "text": {"content": content}, "clientmsgid": clientmsgid})

    # ------------------------------------------------------------------ tags
    def create_tag(self, name: str) -> dict:
        """``{"tag": {"id": …, "name": …}}``"""
        return self._call("POST", "/cgi-bin/tags/create", body={"tag": {"name": name}})

    def get_tags(self) -> dict:
        return self._call("GET", "/cgi-bin/tags/get")

    def batch_tag(self, openids: Iterable[str], tag_id: int) -> dict:
        """Tag openids, 50 per call (WeChat's limit)."""
        return self._batch_tagging("/cgi-bin/tags/members/batchtagging", openids, tag_id)

    def batch_untag(self, openids: Iterable[str], tag_id: int) -> dict:
        return self._batch_tagging("/cgi-bin/tags/members/batchuntagging", openids, tag_id)

    def _batch_tagging(self, path: str, openids: Iterable[str], tag_id: int) -> dict:
        openids = list(openids)
        result: dict = {"errcode": 0, "errmsg": "ok"}
        for i in range(0, len(openids), BATCH_TAG_MAX):
            chunk = openids[i:i + BATCH_TAG_MAX]
            result = self._call("POST", path, body={"openid_list": chunk, "tagid": tag_id})
        return result

    # ------------------------------------------------------------------ menu
    def create_menu(self, menu: Mapping[str, Any]) -> dict:
        """The official account's custom menu (replaces the current one): ``{"button": [...]}``."""
        return self._call("POST", "/cgi-bin/menu/create", body=dict(menu))

    # ------------------------------------------------------------------ QR codes
    def create_qrcode(self, scene_str: str, permanent: bool = True, expire_seconds: int | None = None) -> dict:
        """Parametric QR code: ``{"ticket", "url"[, "expire_seconds"]}``. Temporary codes default to,
        and are capped at, 30 days."""
        if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= 64:
            raise ValueError("scene_str must be 1..64 characters")
        if permanent:
            body: dict[str, Any] = {"action_name": "QR_LIMIT_STR_SCENE"}
        else:
            seconds = QR_TEMP_MAX_SECONDS if expire_seconds is None else int(expire_seconds)
            body = {"action_name": "QR_STR_SCENE", "expire_seconds": max(1, min(seconds, QR_TEMP_MAX_SECONDS))}
        body["action_info"] = {"scene": {"scene_str": scene_str}}
        return self._call("POST", "/cgi-bin/qrcode/create", body=body)

    @staticmethod
    def qrcode_image_url(ticket: str) -> str:
        """Where the QR image for a ticket is shown (mp.weixin.qq.com, not an API call)."""
        return "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote(ticket, safe="")

    # ------------------------------------------------------------------ mini-program
    def jscode2session(self, js_code: str) -> dict:
        """``{"openid", "session_key"[, "unionid"]}`` — keep session_key on the server. No access_token."""
        return self._http("GET", "/sns/jscode2session", params={
            "appid": self.appid, "secret": self.secret, "js_code": js_code,
            "grant_type": "authorization_code"})

    def get_wxacode_unlimited(self, scene: str, page: str | None = None, check_path: bool | None = None,
                              env_version: str | None = None, width: int | None = None) -> bytes:
        """Mini-program code image (bytes). ``scene``: ≤ 32 chars of [0-9A-Za-z!#$&'()*+,/:;=?@-._~]."""
        if not isinstance(scene, str) or not WXACODE_SCENE_RE.match(scene):
            raise ValueError("scene must be 1..32 characters of [0-9A-Za-z!#$&'()*+,/:;=?@-._~]")
        body: dict[str, Any] = {"scene": scene}
        if page:
            body["page"] = page
        if check_path is not None:
            body["check_path"] = bool(check_path)
        if env_version:
            body["env_version"] = env_version
        if width:
            body["width"] = int(width)
        result = self._call("POST", "/wxa/getwxacodeunlimit", body=body, raw_ok=True)
        if not isinstance(result, bytes):
            raise WeChatAPIError(None, "getwxacodeunlimit answered JSON without an image", http_status=200,
                                 path="/wxa/getwxacodeunlimit", response=result)
        return result

    def msg_sec_check(self, openid: str, content: str, scene: int = 2) -> str:
        """Content security, version 2: returns ``result.suggest`` (``pass``/``review``/``risky``).
        ``scene``: 1 资料, 2 评论, 3 论坛, 4 社交日志."""
        result = self._call("POST", "/wxa/msg_sec_check", body={
            "version": 2, "openid": openid, "scene": scene, "content": content})
        suggest = (result.get("result") or {}).get("suggest")
        if suggest not in ("pass", "review", "risky"):
            raise WeChatAPIError(None, "msg_sec_check answered without result.suggest", http_status=200,
                                 path="/wxa/msg_sec_check", response=result)
        return suggest

    def send_mini_subscribe(self, openid: str, template_id: str, data: Mapping[str, Any],
                            page: str | None = None, miniprogram_state: str | None = None,
                            lang: str | None = None) -> dict:
        """Mini-program subscribeMessage.send (needs the mini-program client)."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _wrap_data(data)}
        if page:
            body["page"] = page
        if miniprogram_state:
            body["miniprogram_state"] = miniprogram_state
        if lang:
            body["lang"] = lang
        log.debug("subscribe/send %s to %s", template_id, mask(openid))
        return self._call("POST", "/cgi-bin/message/subscribe/send", body=body)

    # ------------------------------------------------------------------ media
    def get_media(self, media_id: str) -> tuple[bytes, str]:
        """A temporary media file (a chat photo or voice) by its ``media_id``: ``(bytes, content type)``.

        WeChat keeps temporary media 3 days; afterwards (or for an unknown id) it answers 40007
        ``invalid media_id``, raised as ``WeChatAPIError`` with that errcode."""
        if not isinstance(media_id, str) or not media_id or len(media_id) > 128:
            raise ValueError("media_id must be 1..128 characters")
        result = self._call("GET", "/cgi-bin/media/get", params={"media_id": media_id}, raw_ok=True)
        if not isinstance(result, bytes):
            raise WeChatAPIError(None, "media/get answered JSON without a file", http_status=200,
                                 path="/cgi-bin/media/get", response=result)
        return result, sniff_content_type(result)


MEDIA_INVALID = 40007  # invalid media_id: expired (after 3 days) or never issued

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
          (b"#!AMR", "audio/amr"), (b"#!SILK", "audio/silk"), (b"ID3", "audio/mpeg"))


def sniff_content_type(data: bytes) -> str:
    """The content type of a media file from its first bytes (WeChat's header is not always right)."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"

