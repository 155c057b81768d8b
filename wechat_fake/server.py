"""A fake WeChat API server for tests and offline development.

It speaks WeChat's JSON endpoints on loopback (real HTTP, werkzeug threaded server), records every
call, and can be told to answer with WeChat's error codes, HTTP errors or delays.  Drive it from
Python (``FakeWeChatServer``) or, from another process, through its control API under ``/__fake__/``
(``FakeWeChatControl`` is a small client for that API).

Behaviour follows /work/shared/wechat/PLATFORM.md: stable_token returns the same token until it
expires or ``force_refresh`` is asked; ``/cgi-bin/token`` issues a new token each call and leaves the
previous one valid for 5 more minutes; every API call needs an ``access_token`` issued here (40001
unknown, 42001 expired); message sends validate the body shape.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re
import secrets
import struct
import threading
import time
import zlib
from typing import Any

import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

TOKEN_TTL = 7200
OLD_TOKEN_GRACE = 300  # /cgi-bin/token: the previous token stays valid 5 more minutes
CLIENT_MSG_ID_TTL = 600  # template/send client_msg_id idempotency window
MEDIA_TTL = 3 * 24 * 3600  # temporary media (media/get) live 3 days


def _generated_photo(media_id: str) -> bytes:
    """Bytes standing for a user's photo: a JPEG signature and the media id's digest (deterministic)."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(media_id.encode()).digest() * 4 + b"\xff\xd9"

#: paths that need an access_token of the mini-program (when a mini-program app is configured)
MINI_PATHS = {"/cgi-bin/message/subscribe/send", "/wxa/getwxacodeunlimit"}
#: paths that accept a token of either app
ANY_APP_PATHS = {"/wxa/msg_sec_check"}
#: paths that need no access_token
NO_TOKEN_PATHS = {"/cgi-bin/token", "/cgi-bin/stable_token", "/sns/jscode2session"}

SEND_PATHS = {
    "/cgi-bin/message/custom/send": "custom",
    "/cgi-bin/message/subscribe/bizsend": "bizsend",
    "/cgi-bin/message/template/send": "template",
    "/cgi-bin/message/mass/sendall": "mass_tag",
    "/cgi-bin/message/mass/send": "mass_openids",
    "/cgi-bin/message/subscribe/send": "mini_subscribe",
}

CUSTOM_MSGTYPES = {
    "text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle",
    "msgmenu", "wxcard", "miniprogrampage",
}
MASS_MSGTYPES = {"text", "mpnews", "voice", "image", "mpvideo", "wxcard"}
WXACODE_SCENE_RE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")

DEFAULT_RISKY_WORDS = ("赌博", "毒品", "色情", "枪支")
DEFAULT_REVIEW_WORDS = ("代开发票", "刷单")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # noqa: D401 - silence per-request logs
        pass


class _KeepAliveHandler(_QuietHandler):
    """HTTP/1.1 with persistent connections (benchmarks: no TCP set-up per call)."""

    protocol_version = "HTTP/1.1"


def _png_bytes(text: str) -> bytes:
    """A valid 1x1 PNG carrying ``text`` in a tEXt chunk (so tests can see which scene it encodes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00")
    text_data = b"Comment\x00" + text.encode("utf-8")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", text_data)
        + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def png_comment(data: bytes) -> str | None:
    """Read back the tEXt comment of a PNG produced by the fake (helper for tests)."""
    marker = b"tEXtComment\x00"
    i = data.find(marker)
    if i < 0:
        return None
    length = struct.unpack(">I", data[i - 4:i])[0]
    return data[i + len(marker): i + 4 + length].decode("utf-8")


class _ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str):
        self.errcode = errcode
        self.errmsg = errmsg


class FakeWeChatServer:
    """Fake api.weixin.qq.com on 127.0.0.1.

    ``with FakeWeChatServer(appid=..., secret=..., mp_appid=..., mp_secret=...) as fake: fake.base_url``
    """

    def __init__(
        self,
        appid: str = "wx_test_app",
        secret: str = "s3cret",
        mp_appid: str | None = None,
        mp_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        enforce_windows: bool = False,
        auto_codes: bool = False,
        quiet: bool = True,
        keep_alive: bool = False,
    ):
        self.apps: dict[str, str] = {appid: secret}
        self.appid = appid
        self.mp_appid = mp_appid
        if mp_appid:
            self.apps[mp_appid] = mp_secret or ""
        self._configured_apps = dict(self.apps)
        self.host = host
        self.port = port
        self.enforce_windows = enforce_windows
        self.auto_codes = auto_codes
        self.quiet = quiet
        self.keep_alive = keep_alive
        self.risky_words = list(DEFAULT_RISKY_WORDS)
        self.review_words = list(DEFAULT_REVIEW_WORDS)
        self._lock = threading.RLock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._time_offset = 0.0
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle
    def _handler(self):
        if self.keep_alive:
            return _KeepAliveHandler
        return _QuietHandler if self.quiet else None

    def start(self) -> "FakeWeChatServer":
        if self._server is not None:
            return self
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True,
            request_handler=self._handler(),
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-wechat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread:
            self._thread.join(timeout=5)
        self._thread = None

    def serve_forever(self) -> None:
        """Blocking mode for the CLI."""
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True,
            request_handler=self._handler(),
        )
        self.port = self._server.server_port
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeWeChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        with self._lock:
            self._calls: list[dict] = []
            self._sent: list[dict] = []
            self._tokens: dict[str, dict] = {}  # token -> {"appid", "expires_at", "valid"}
            self._stable: dict[str, str] = {}  # appid -> current stable token
            self._failures: dict[str, list[dict]] = {}
            self._delays: dict[str, list[float]] = {}
            self._responses: dict[str, Any] = {}
            self._codes: dict[str, dict] = {}
            self._used_codes: set[str] = set()
            self._client_msg_ids: dict[tuple[str, str], tuple[float, int]] = {}
            self._mass_clientmsgids: set[tuple[str, str]] = set()
            self._tags: dict[int, dict] = {}
            self._user_tags: dict[str, set[int]] = {}
            self._next_tag_id = 100
            self._next_msgid = 1000000
            self._windows: dict[str, dict] = {}
            self._qrcodes: dict[str, dict] = {}
            self._unionids: dict[str, str] = {}  # official-account openid -> unionid (user/info)
            self._menu: dict | None = None  # the last menu/create body
            # Opt-in platform limits (set_rate_limit / set_mass_monthly_limit); reset() clears them.
            self._rate_limits: dict[str, int] = {}
            self._rate_counts: dict[tuple[str, int], int] = {}
            self._mass_monthly_limit: int | None = None
            self._mass_received: dict[tuple[str, str], int] = {}
            # Temporary media (media/get): media_id -> {"content", "content_type", "created"}; expired ids.
            self._media: dict[str, dict] = {}
            self._expired_media: set[str] = set()

    def reset(self) -> None:
        """Forget calls, tokens, failures, codes, tags, apps added with `add_app`, … (the
        configuration stays)."""
        self._reset_state()
        with self._lock:
            self.apps = dict(self._configured_apps)
        self._time_offset = 0.0

    def add_app(self, appid: str, secret: str) -> None:
        """Serve one more official account (a county's own): its tokens, calls and sends carry its
        appid (`calls()[i]["appid"]`, `sent_messages()[i]["appid"]`). Forgotten by `reset()`."""
        with self._lock:
            self.apps[appid] = secret

    def now(self) -> float:
        return time.time() + self._time_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens, windows and client_msg_id expire accordingly)."""
        with self._lock:
            self._time_offset += seconds

    def _msgid(self) -> int:
        with self._lock:
            self._next_msgid += 1
            return self._next_msgid

    # ------------------------------------------------------------------ test API
    def calls(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if path is None or c["path"] == path]

    def call_count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self._calls if path is None or c["path"] == path)

    def sent_messages(self, kind: str | None = None) -> list[dict]:
        """Successful message sends: dicts with kind, path, touser, body, msgid, time."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._sent if kind is None or m["kind"] == kind]

    def fail_next(self, path: str, errcode: int, errmsg: str = "fake error", times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(path, []).extend(
                [{"errcode": int(errcode), "errmsg": errmsg}] * int(times))

    def fail_next_http(self, path: str, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(path, []).extend([{"http_status": int(status)}] * int(times))

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` calls to ``path`` wait ``seconds`` before answering (timeouts)."""
        with self._lock:
            self._delays.setdefault(path, []).extend([float(seconds)] * int(times))

    def set_response(self, path: str, json_obj: Any) -> None:
        """Fixed JSON answer for a path (``None`` removes it)."""
        with self._lock:
            if json_obj is None:
                self._responses.pop(path, None)
            else:
                self._responses[path] = copy.deepcopy(json_obj)

    def set_rate_limit(self, path: str, per_minute: int | None) -> None:
        """Answer 45011 (minute quota) once ``path`` got ``per_minute`` calls in the current minute of
        the fake's clock (``None`` removes the limit). WeChat: 60/min for the mass-send APIs."""
        with self._lock:
            if per_minute is None:
                self._rate_limits.pop(path, None)
            else:
                self._rate_limits[path] = int(per_minute)

    def set_mass_monthly_limit(self, limit: int | None = 4) -> None:
        """Each follower receives at most ``limit`` mass messages per calendar month (fake clock);
        mass sends still succeed, the extra followers are left out (``dropped`` in the sent record)."""
        with self._lock:
            self._mass_monthly_limit = limit

    def mass_received(self, openid: str) -> int:
        """How many mass messages ``openid`` received this month (with the monthly limit enforced)."""
        with self._lock:
            return self._mass_received.get((openid, time.strftime("%Y-%m", time.gmtime(self.now()))), 0)

    def _check_rate(self, path: str) -> None:
        limit = self._rate_limits.get(path)
        if limit is None:
            return
        key = (path, int(self.now() // 60))
        if self._rate_counts.get(key, 0) >= limit:
            raise _ApiError(45011, "api minute-quota reach limit, mustslower retry next minute")
        self._rate_counts[key] = self._rate_counts.get(key, 0) + 1

    def add_media(self, media_id: str, content: bytes, content_type: str = "image/jpeg") -> None:
        """A temporary media file a user sent (media/get serves it for 3 days of the fake's clock). A
        media id never added is served as a small generated photo, as if the user had sent one."""
        with self._lock:
            self._media[media_id] = {"content": bytes(content), "content_type": content_type,
                                     "created": self.now()}
            self._expired_media.discard(media_id)

    def expire_media(self, media_id: str) -> None:
        """WeChat no longer has this media id (its 3 days are over): media/get answers 40007."""
        with self._lock:
            self._expired_media.add(media_id)

    def set_unionid(self, openid: str, unionid: str) -> None:
        """The unionid /cgi-bin/user/info reports for an official-account follower."""
        with self._lock:
            self._unionids[openid] = unionid

    def register_code(self, js_code: str, openid: str, session_key: str | None = None,
                      unionid: str | None = None) -> None:
        """A single-use js_code for /sns/jscode2session."""
        with self._lock:
            self._codes[js_code] = {
                "openid": openid,
                "session_key": session_key or base64.b64encode(secrets.token_bytes(16)).decode(),
                "unionid": unionid,
            }
            self._used_codes.discard(js_code)

    def expire_tokens(self) -> None:
        """Every issued token is now expired: API calls answer 42001, stable_token issues a new one."""
        with self._lock:
            past = self.now() - 1
            for info in self._tokens.values():
                info["expires_at"] = min(info["expires_at"], past)

    def invalidate_tokens(self) -> None:
        """Every issued token now answers 40001, but stable_token (without force_refresh) keeps returning
        the current one - like WeChat after a token was reset elsewhere. Only force_refresh cures it."""
        with self._lock:
            for info in self._tokens.values():
                info["valid"] = False

    def issue_token(self, appid: str | None = None) -> str:
        """Issue a valid token directly (for tests that call endpoints by hand)."""
        with self._lock:
            return self._new_token(appid or self.appid)

    def open_window(self, openid: str, kind: str = "message") -> None:
        """Open a customer-service window as a user action would (used when enforce_windows=True):
        ``message`` → 5 messages within 48 h; ``event`` (click/follow/scan) → 3 within 1 minute."""
        with self._lock:
            if kind == "message":
                self._windows[openid] = {"until": self.now() + 48 * 3600, "left": 5}
            else:
                self._windows[openid] = {"until": self.now() + 60, "left": 3}

    def qrcodes(self) -> dict[str, dict]:
        """ticket -> {"scene", "action_name", "expire_at"} for QR codes created so far."""
        with self._lock:
            return copy.deepcopy(self._qrcodes)

    def tags(self) -> dict[int, dict]:
        with self._lock:
            return copy.deepcopy(self._tags)

    def user_tags(self, openid: str) -> set[int]:
        with self._lock:
            return set(self._user_tags.get(openid, set()))

    # ------------------------------------------------------------------ tokens
    def _new_token(self, appid: str) -> str:
        token = f"FAKE_AT_{appid}_{secrets.token_hex(12)}"
        self._tokens[token] = {"appid": appid, "expires_at": self.now() + TOKEN_TTL, "valid": True}
        return token

    def _token_expires_in(self, token: str) -> int:
        return max(0, round(self._tokens[token]["expires_at"] - self.now()))

    def _check_app(self, appid: str | None, secret: str | None) -> None:
        if not appid or appid not in self.apps:
            raise _ApiError(40013, "invalid appid")
        if secret != self.apps[appid]:
            raise _ApiError(40125, "invalid appsecret")

    def _check_token(self, path: str, token: str | None) -> str:
        """Returns the appid the token belongs to."""
        if not token:
            raise _ApiError(41001, "access_token missing")
        info = self._tokens.get(token)
        if info is None or not info["valid"]:
            raise _ApiError(40001, "invalid credential, access_token is invalid or not latest")
        if info["expires_at"] <= self.now():
            raise _ApiError(42001, "access_token expired")
        appid = info["appid"]
        if self.mp_appid and path not in ANY_APP_PATHS:
            wants_mini = path in MINI_PATHS
            if wants_mini != (appid == self.mp_appid):
                raise _ApiError(48001, "api unauthorized (token of the wrong app)")
        return appid

    # ------------------------------------------------------------------ WSGI
    def _wsgi(self, environ, start_response):
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception as exc:  # pragma: no cover - a bug in the fake itself
            log.exception("fake wechat crashed")
            response = Response(json.dumps({"errcode": -1, "errmsg": f"fake crashed: {exc}"}),
                                status=500, mimetype="application/json")
        return response(environ, start_response)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> Response:
        return Response(json.dumps(obj, ensure_ascii=False), status=status,
                        content_type="application/json; encoding=utf-8")

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/__fake__/"):
            return self._control(request, path)

        raw = request.get_data()
        body = None
        body_error = False
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                body_error = True
        query = {k: v for k, v in request.args.items()}
        with self._lock:
            record = {
                "path": path,
                "method": request.method,
                "query": query,
                "json": copy.deepcopy(body),
                "raw_body": raw.decode("utf-8", "replace") if raw else "",
                "time": time.time(),
            }
            self._calls.append(record)
            delay = self._delays.get(path, []).pop(0) if self._delays.get(path) else None
            failure = self._failures.get(path, []).pop(0) if self._failures.get(path) else None
            fixed = copy.deepcopy(self._responses.get(path))

        if delay:
            time.sleep(delay)
        if failure is not None:
            if "http_status" in failure:
                record["status"] = failure["http_status"]
                return Response("fake upstream error", status=failure["http_status"], mimetype="text/html")
            record["errcode"] = failure["errcode"]
            return self._json({"errcode": failure["errcode"], "errmsg": failure["errmsg"]})
        if fixed is not None:
            return self._json(fixed)

        handler = self._ROUTES.get(path)
        if handler is None:
            return self._json({"errcode": 404, "errmsg": f"fake: unknown path {path}"}, status=404)
        method, func = handler
        if request.method != method:
            return self._json({"errcode": 43002, "errmsg": f"require {method} method"})
        try:
            with self._lock:
                if path not in NO_TOKEN_PATHS:
                    record["appid"] = self._check_token(path, query.get("access_token"))
                self._check_rate(path)
                if body_error:
                    raise _ApiError(47001, "data format error")
                result = func(self, query, body if isinstance(body, dict) else {}, record)
        except _ApiError as err:
            record["errcode"] = err.errcode
            return self._json({"errcode": err.errcode, "errmsg": err.errmsg})
        if isinstance(result, Response):
            record["errcode"] = 0
            return result
        record["errcode"] = result.get("errcode", 0)
        return self._json(result)

    # ------------------------------------------------------------------ endpoints
    def _ep_token(self, query, body, record):
        if query.get("grant_type") != "client_credential":
            raise _ApiError(40002, "invalid grant_type")
        appid = query.get("appid")
        self._check_app(appid, query.get("secret"))
        now = self.now()
        for info in self._tokens.values():
            if info["appid"] == appid:
                info["expires_at"] = min(info["expires_at"], now + OLD_TOKEN_GRACE)
        token = self._new_token(appid)
        return {"access_token": token, "expires_in": TOKEN_TTL}

    def _ep_stable_token(self, query, body, record):
        if body.get("grant_type") != "client_credential":
            raise _ApiError(40002, "invalid grant_type")
        appid = body.get("appid")
        self._check_app(appid, body.get("secret"))
        current = self._stable.get(appid)
        info = self._tokens.get(current) if current else None
        if body.get("force_refresh") or info is None or info["expires_at"] <= self.now():
            if info is not None:
                info["valid"] = False  # force_refresh invalidates the previous stable token
            current = self._new_token(appid)
            self._stable[appid] = current
        return {"access_token": current, "expires_in": self._token_expires_in(current)}

    @staticmethod
    def _require_touser(body):
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser.strip():
            raise _ApiError(40003, "invalid openid")
        return touser

    @staticmethod
    def _check_template_data(data, thing_limit: bool = True):
        if not isinstance(data, dict) or not data:
            raise _ApiError(47003, "argument invalid! data invalid")
        for key, item in data.items():
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                raise _ApiError(47003, f"argument invalid! data.{key}.value invalid")
            value = item["value"]
            if thing_limit and key.startswith("thing") and (len(value) > 20 or "\n" in value or not value):
                raise _ApiError(47003, f"argument invalid! data.{key}.value invalid")
            if len(value) > 200:
                raise _ApiError(47003, f"argument invalid! data.{key}.value too long")

    def _record_sent(self, record, kind, touser, body, msgid):
        self._sent.append({
            "kind": kind, "path": record["path"], "touser": touser, "body": copy.deepcopy(body),
            "msgid": msgid, "time": time.time(), "appid": record.get("appid"),
        })

    def _ep_custom_send(self, query, body, record):
        touser = self._require_touser(body)
        msgtype = body.get("msgtype")
        if msgtype not in CUSTOM_MSGTYPES or not isinstance(body.get(msgtype), dict):
            raise _ApiError(47001, "data format error (msgtype)")
        if msgtype == "text":
            content = body["text"].get("content")
            if not isinstance(content, str) or not content:
                raise _ApiError(47001, "data format error (text.content)")
        if self.enforce_windows:
            win = self._windows.get(touser)
            if win is None or win["until"] <= self.now():
                raise _ApiError(45015, "response out of time limit or subscription is canceled")
            if win["left"] <= 0:
                raise _ApiError(45047, "out of response count limit")
            win["left"] -= 1
        self._record_sent(record, "custom", touser, body, None)
        return {"errcode": 0, "errmsg": "ok"}

    def _ep_bizsend(self, query, body, record):
        touser = self._require_touser(body)
        if not body.get("template_id"):
            raise _ApiError(40037, "invalid template_id")
        self._check_template_data(body.get("data"))
        msgid = self._msgid()
        self._record_sent(record, "bizsend", touser, body, msgid)
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def _ep_template_send(self, query, body, record):
        touser = self._require_touser(body)
        if not body.get("template_id"):
            raise _ApiError(40037, "invalid template_id")
        self._check_template_data(body.get("data"))
        cmid = body.get("client_msg_id")
        now = self.now()
        if cmid:
            key = (record.get("appid") or "", str(cmid))
            seen = self._client_msg_ids.get(key)
            if seen and now - seen[0] < CLIENT_MSG_ID_TTL:
                record["duplicate"] = True
                return {"errcode": 0, "errmsg": "ok", "msgid": seen[1]}
        msgid = self._msgid()
        if cmid:
            self._client_msg_ids[key] = (now, msgid)
        self._record_sent(record, "template", touser, body, msgid)
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def _check_mass(self, body, record):
        msgtype = body.get("msgtype")
        if msgtype not in MASS_MSGTYPES or not isinstance(body.get(msgtype), dict):
            raise _ApiError(47001, "data format error (msgtype)")
        if msgtype == "text" and not body["text"].get("content"):
            raise _ApiError(47001, "data format error (text.content)")
        cmid = body.get("clientmsgid")
        if cmid:
            key = (record.get("appid") or "", str(cmid))
            if key in self._mass_clientmsgids:
                raise _ApiError(45065, "clientmsgid exist")
            self._mass_clientmsgids.add(key)

    def _ep_mass_sendall(self, query, body, record):
        flt = body.get("filter")
        if not isinstance(flt, dict):
            raise _ApiError(47001, "data format error (filter)")
        if not flt.get("is_to_all"):
            tag_id = flt.get("tag_id")
            if tag_id is None or (self._tags and int(tag_id) not in self._tags):
                raise _ApiError(40050, "invalid tag_id")
        self._check_mass(body, record)
        msgid = self._msgid()
        touser = "ALL" if flt.get("is_to_all") else f"tag:{flt.get('tag_id')}"
        self._record_sent(record, "mass_tag", touser, body, msgid)
        return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msgid,
                "msg_data_id": msgid + 7}

    def _ep_mass_send(self, query, body, record):
        touser = body.get("touser")
        if not isinstance(touser, list) or not all(isinstance(o, str) and o for o in touser):
            raise _ApiError(40003, "invalid openid")
        if not 2 <= len(touser) <= 10000:
            raise _ApiError(40130, "invalid openid list size, at least two openid")
        self._check_mass(body, record)
        msgid = self._msgid()
        receivers = list(touser)
        if self._mass_monthly_limit is not None:
            month = time.strftime("%Y-%m", time.gmtime(self.now()))
            receivers = [o for o in touser if self._mass_received.get((o, month), 0) < self._mass_monthly_limit]
            for o in receivers:
                self._mass_received[(o, month)] = self._mass_received.get((o, month), 0) + 1
            record["dropped"] = [o for o in touser if o not in set(receivers)]
        self._record_sent(record, "mass_openids", receivers, body, msgid)
        return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msgid,
                "msg_data_id": msgid + 7}

    def _ep_tags_create(self, query, body, record):
        tag = body.get("tag")
        name = tag.get("name") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not name:
            raise _ApiError(47001, "data format error")
        if len(name) > 30:
            raise _ApiError(45158, "tag name too long")
        if any(t["name"] == name for t in self._tags.values()):
            raise _ApiError(45157, "invalid tag name (duplicate)")
        if len(self._tags) >= 100:
            raise _ApiError(45056, "too many tags")
        tag_id = self._next_tag_id
        self._next_tag_id += 1
        self._tags[tag_id] = {"id": tag_id, "name": name}
        return {"tag": {"id": tag_id, "name": name}}

    def _ep_tags_get(self, query, body, record):
        return {"tags": [
            {"id": t["id"], "name": t["name"],
             "count": sum(1 for s in self._user_tags.values() if t["id"] in s)}
            for t in self._tags.values()
        ]}

    def _tagging_args(self, body):
        openids = body.get("openid_list")
        tag_id = body.get("tagid")
        if not isinstance(openids, list) or not openids or not all(isinstance(o, str) and o for o in openids):
            raise _ApiError(40003, "invalid openid")
        if len(openids) > 50:
            raise _ApiError(40032, "invalid openid list size (max 50)")
        try:
            tag_id = int(tag_id)
        except (TypeError, ValueError):
            raise _ApiError(47001, "data format error (tagid)") from None
        if tag_id not in self._tags:
            raise _ApiError(45159, "invalid tag id")
        return openids, tag_id

    def _ep_batchtagging(self, query, body, record):
        openids, tag_id = self._tagging_args(body)
        for o in openids:
            tags = self._user_tags.setdefault(o, set())
            if tag_id not in tags and len(tags) >= 20:
                raise _ApiError(45059, "user has too many tags")
        for o in openids:
            self._user_tags[o].add(tag_id)
        return {"errcode": 0, "errmsg": "ok"}

    def _ep_batchuntagging(self, query, body, record):
        openids, tag_id = self._tagging_args(body)
        for o in openids:
            self._user_tags.get(o, set()).discard(tag_id)
        return {"errcode": 0, "errmsg": "ok"}

    def _ep_menu_create(self, query, body, record):
        """menu/create with WeChat's checks: 1-3 buttons, 1-5 entries each, names 16/60 bytes, the
        fields each type needs. The menu is kept (`menu()`, GET /__fake__/menu)."""
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise _ApiError(40016, "invalid button size")
        needs = {"click": ("key",), "view": ("url",), "miniprogram": ("appid", "pagepath", "url")}
        for button in buttons:
            subs = button.get("sub_button")
            if len(str(button.get("name") or "").encode("utf-8")) not in range(1, 17):
                raise _ApiError(40018, "invalid button name size")
            leaves = subs if subs else [button]
            if subs is not None and not 1 <= len(subs) <= 5:
                raise _ApiError(40023, "invalid sub button size")
            for leaf in leaves:
                if leaf is not button and len(str(leaf.get("name") or "").encode("utf-8")) not in range(1, 61):
                    raise _ApiError(40018, "invalid button name size")
                kind = leaf.get("type")
                if kind not in needs:
                    raise _ApiError(40017, "invalid button type")
                if any(not leaf.get(field) for field in needs[kind]):
                    raise _ApiError(40019 if kind == "click" else 40054, "invalid button field")
        with self._lock:
            self._menu = copy.deepcopy(body)
        return {}

    def menu(self) -> dict | None:
        """The last menu created, as sent."""
        with self._lock:
            return copy.deepcopy(self._menu)

    def _ep_qrcode_create(self, query, body, record):
        action = body.get("action_name")
        scene = (body.get("action_info") or {}).get("scene") or {}
        if action in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            value = scene.get("scene_str")
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                raise _ApiError(40097, "invalid args (scene_str)")
        elif action in ("QR_SCENE", "QR_LIMIT_SCENE"):
            value = scene.get("scene_id")
            if not isinstance(value, int) or value <= 0 or (action == "QR_LIMIT_SCENE" and value > 100000):
                raise _ApiError(40097, "invalid args (scene_id)")
        else:
            raise _ApiError(40097, "invalid args (action_name)")
        ticket = "gQF" + secrets.token_urlsafe(24)
        url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(12)}"
        result = {"ticket": ticket, "url": url}
        expire_at = None
        if action in ("QR_SCENE", "QR_STR_SCENE"):
            expire = body.get("expire_seconds", 60)
            if not isinstance(expire, int) or expire <= 0:
                raise _ApiError(40097, "invalid args (expire_seconds)")
            expire = min(expire, 2592000)
            result["expire_seconds"] = expire
            expire_at = self.now() + expire
        self._qrcodes[ticket] = {"scene": value, "action_name": action, "expire_at": expire_at, "url": url}
        return result

    def _ep_jscode2session(self, query, body, record):
        appid = query.get("appid")
        self._check_app(appid, query.get("secret"))
        if query.get("grant_type") != "authorization_code":
            raise _ApiError(40002, "invalid grant_type")
        code = query.get("js_code")
        if not code:
            raise _ApiError(41008, "missing code")
        if code in self._used_codes:
            raise _ApiError(40163, "code been used")
        info = self._codes.get(code)
        if info is None and self.auto_codes:
            digest = base64.urlsafe_b64encode(code.encode()).decode().rstrip("=")[:20]
            info = {"openid": f"o_mp_{digest}", "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
                    "unionid": None}
        if info is None:
            raise _ApiError(40029, "invalid code")
        self._used_codes.add(code)
        result = {"openid": info["openid"], "session_key": info["session_key"]}
        if info.get("unionid"):
            result["unionid"] = info["unionid"]
        return result

    def _ep_wxacode(self, query, body, record):
        scene = body.get("scene")
        if not isinstance(scene, str) or not WXACODE_SCENE_RE.match(scene):
            raise _ApiError(40169, "invalid length for scene, or the data is not json string")
        page = body.get("page")
        if page is not None and (not isinstance(page, str) or page.startswith("/")):
            raise _ApiError(41030, "invalid page rule")
        text = json.dumps({"scene": scene, "page": page}, ensure_ascii=False)
        return Response(_png_bytes(text), status=200, mimetype="image/png")

    def _ep_msg_sec_check(self, query, body, record):
        content = body.get("content")
        if not isinstance(content, str):
            raise _ApiError(47001, "data format error (content)")
        risky = any(w in content for w in self.risky_words)
        review = any(w in content for w in self.review_words)
        if body.get("version") != 2:  # version 1 semantics: errcode tells
            if risky:
                raise _ApiError(87014, "risky content")
            return {"errcode": 0, "errmsg": "ok"}
        if not body.get("openid"):
            raise _ApiError(40003, "invalid openid")
        if body.get("scene") not in (1, 2, 3, 4):
            raise _ApiError(40097, "invalid args (scene)")
        suggest, label = ("risky", 20006) if risky else ("review", 21000) if review else ("pass", 100)
        return {
            "errcode": 0, "errmsg": "ok",
            "result": {"suggest": suggest, "label": label},
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}],
            "trace_id": secrets.token_hex(8),
        }

    def _ep_mini_subscribe_send(self, query, body, record):
        touser = self._require_touser(body)
        if not body.get("template_id"):
            raise _ApiError(40037, "invalid template_id")
        self._check_template_data(body.get("data"))
        state = body.get("miniprogram_state")
        if state is not None and state not in ("developer", "trial", "formal"):
            raise _ApiError(40097, "invalid args (miniprogram_state)")
        self._record_sent(record, "mini_subscribe", touser, body, None)
        return {"errcode": 0, "errmsg": "ok"}

    def _ep_user_info(self, query, body, record):
        openid = query.get("openid")
        if not openid:
            raise _ApiError(40003, "invalid openid")
        info = {"subscribe": 1, "openid": openid, "language": "zh_CN"}
        with self._lock:
            if openid in self._unionids:
                info["unionid"] = self._unionids[openid]
        return info

    def _ep_media_get(self, query, body, record):
        media_id = query.get("media_id") or ""
        if not media_id:
            raise _ApiError(40007, "invalid media_id")
        item = self._media.get(media_id)
        if item is None:  # a photo the user sent: first asked for now
            item = self._media[media_id] = {"content": _generated_photo(media_id), "content_type": "image/jpeg",
                                            "created": self.now()}
        if media_id in self._expired_media or self.now() - item["created"] > MEDIA_TTL:
            raise _ApiError(40007, "invalid media_id")
        return Response(item["content"], status=200, mimetype=item["content_type"],
                        headers={"Content-disposition": f'attachment; filename="{media_id}"'})

    _ROUTES = {
        "/cgi-bin/media/get": ("GET", _ep_media_get),
        "/cgi-bin/token": ("GET", _ep_token),
        "/cgi-bin/user/info": ("GET", _ep_user_info),
        "/cgi-bin/stable_token": ("POST", _ep_stable_token),
        "/cgi-bin/message/custom/send": ("POST", _ep_custom_send),
        "/cgi-bin/message/subscribe/bizsend": ("POST", _ep_bizsend),
        "/cgi-bin/message/template/send": ("POST", _ep_template_send),
        "/cgi-bin/message/mass/sendall": ("POST", _ep_mass_sendall),
        "/cgi-bin/message/mass/send": ("POST", _ep_mass_send),
        "/cgi-bin/tags/create": ("POST", _ep_tags_create),
        "/cgi-bin/tags/get": ("GET", _ep_tags_get),
        "/cgi-bin/tags/members/batchtagging": ("POST", _ep_batchtagging),
        "/cgi-bin/tags/members/batchuntagging": ("POST", _ep_batchuntagging),
        "/cgi-bin/qrcode/create": ("POST", _ep_qrcode_create),
        "/cgi-bin/menu/create": ("POST", _ep_menu_create),
        "/sns/jscode2session": ("GET", _ep_jscode2session),
        "/wxa/getwxacodeunlimit": ("POST", _ep_wxacode),
        "/wxa/msg_sec_check": ("POST", _ep_msg_sec_check),
        "/cgi-bin/message/subscribe/send": ("POST", _ep_mini_subscribe_send),
    }

    # ------------------------------------------------------------------ control API
    def _control(self, request: Request, path: str) -> Response:
        action = path[len("/__fake__/"):].strip("/")
        data = request.get_json(silent=True) or {}
        if action == "calls" and request.method == "GET":
            return self._json(self.calls(request.args.get("path")))
        if action == "sent" and request.method == "GET":
            return self._json(self.sent_messages(request.args.get("kind")))
        if action == "menu" and request.method == "GET":
            return self._json(self.menu())
        if action == "health":
            return self._json({"ok": True, "appid": self.appid, "mp_appid": self.mp_appid})
        if request.method != "POST":
            return self._json({"error": "use POST"}, status=405)
        if action == "fail":
            if not data.get("path"):
                return self._json({"error": "path required"}, status=400)
            times = int(data.get("times", 1))
            if "http_status" in data:
                self.fail_next_http(data["path"], int(data["http_status"]), times)
            elif "errcode" in data:
                self.fail_next(data["path"], int(data["errcode"]), data.get("errmsg", "fake error"), times)
            else:
                return self._json({"error": "errcode or http_status required"}, status=400)
        elif action == "delay":
            self.delay_next(data["path"], float(data["seconds"]), int(data.get("times", 1)))
        elif action == "reset":
            self.reset()
        elif action == "code":
            self.register_code(data["js_code"], data["openid"], data.get("session_key"), data.get("unionid"))
        elif action == "response":
            self.set_response(data["path"], data.get("json"))
        elif action == "expire":
            self.expire_tokens()
        elif action == "invalidate":
            self.invalidate_tokens()
        elif action == "window":
            self.open_window(data["openid"], data.get("kind", "message"))
        elif action == "advance":
            self.advance(float(data["seconds"]))
        elif action == "media":
            self.add_media(data["media_id"], base64.b64decode(data["content_base64"]),
                           data.get("content_type", "image/jpeg"))
        elif action == "expire_media":
            self.expire_media(data["media_id"])
        elif action == "limits":
            for path, per_minute in (data.get("rate_limits") or {}).items():
                self.set_rate_limit(path, per_minute)
            if "mass_monthly_limit" in data:
                self.set_mass_monthly_limit(data["mass_monthly_limit"])
        else:
            return self._json({"error": f"unknown control action {action}"}, status=404)
        return self._json({"ok": True})


class FakeWeChatControl:
    """Drive a FakeWeChatServer running in another process through its ``/__fake__/`` API."""

    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def _post(self, action: str, payload: dict | None = None) -> None:
        r = self._http.post(f"{self.base_url}/__fake__/{action}", json=payload or {}, timeout=self.timeout)
        r.raise_for_status()

    def calls(self, path: str | None = None) -> list[dict]:
        r = self._http.get(f"{self.base_url}/__fake__/calls", params={"path": path} if path else None,
                           timeout=self.timeout)
        r.raise_for_status()
        return r.json()

    def sent_messages(self, kind: str | None = None) -> list[dict]:
        r = self._http.get(f"{self.base_url}/__fake__/sent", params={"kind": kind} if kind else None,
                           timeout=self.timeout)
        r.raise_for_status()
        return r.json()

    def fail_next(self, path: str, errcode: int, errmsg: str = "fake error", times: int = 1) -> None:
        self._post("fail", {"path": path, "errcode": errcode, "errmsg": errmsg, "times": times})

    def fail_next_http(self, path: str, status: int = 500, times: int = 1) -> None:
        self._post("fail", {"path": path, "http_status": status, "times": times})

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        self._post("delay", {"path": path, "seconds": seconds, "times": times})

    def set_response(self, path: str, json_obj: Any) -> None:
        self._post("response", {"path": path, "json": json_obj})

    def register_code(self, js_code: str, openid: str, session_key: str | None = None,
                      unionid: str | None = None) -> None:
        self._post("code", {"js_code": js_code, "openid": openid, "session_key": session_key, "unionid": unionid})

    def expire_tokens(self) -> None:
        self._post("expire")

    def invalidate_tokens(self) -> None:
        self._post("invalidate")

    def open_window(self, openid: str, kind: str = "message") -> None:
        self._post("window", {"openid": openid, "kind": kind})

    def advance(self, seconds: float) -> None:
        self._post("advance", {"seconds": seconds})

    def add_media(self, media_id: str, content: bytes, content_type: str = "image/jpeg") -> None:
        self._post("media", {"media_id": media_id, "content_base64": base64.b64encode(content).decode(),
                             "content_type": content_type})

    def expire_media(self, media_id: str) -> None:
        self._post("expire_media", {"media_id": media_id})

    def reset(self) -> None:
        self._post("reset")

    def set_limits(self, rate_limits: dict[str, int | None] | None = None, **kw) -> None:
        """``rate_limits={path: per_minute}``, ``mass_monthly_limit=4``."""
        self._post("limits", {"rate_limits": rate_limits or {}, **kw})
