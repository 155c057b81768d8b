"""Simulates WeChat's servers pushing messages and events to the project's ``/wechat`` webhook.

Messages are signed (``signature`` = sha1(sorted(token, timestamp, nonce))) and, in the aes modes,
encrypted with wechatpy's ``PrpCrypto`` and signed with ``msg_signature`` =
sha1(sorted(token, timestamp, nonce, Encrypt)), exactly as WeChat does:

- ``plaintext``: clear XML; query ``signature, timestamp, nonce, openid``
- ``compatible``: clear fields plus ``<Encrypt>``; query adds ``encrypt_type=aes, msg_signature``
- ``safe``: only ``<ToUserName>`` and ``<Encrypt>``; same query as compatible

Encrypted replies are decrypted after checking their ``MsgSignature`` (a wrong signature or appid
raises ``SimulatorError`` unless ``strict=False``). Every reply is also checked against what WeChat
accepts; anything WeChat would refuse ("该公众号暂时无法提供服务") is listed in ``SimReply.problems``.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import random
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

MODES = ("plaintext", "compatible", "safe")
REPLY_CONTENT_LIMIT = 2048  # bytes; community-reported cap of a passive text reply
WECHAT_TIMEOUT = 5.0  # WeChat drops the connection after 5 seconds

_msg_ids = itertools.count(random.randint(10**16, 2 * 10**16))
_msg_id_lock = threading.Lock()


def next_msg_id() -> int:
    """A unique, WeChat-looking 64-bit MsgId (thread-safe)."""
    with _msg_id_lock:
        return next(_msg_ids)


def wechat_signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """WeChat's signature: sha1 of the sorted, concatenated strings (add Encrypt for msg_signature)."""
    return hashlib.sha1("".join(sorted([token, str(timestamp), str(nonce), *extra])).encode("utf-8")).hexdigest()


sign = wechat_signature


def cdata(value: Any) -> str:
    text = str(value)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: list[tuple[str, Any]]) -> str:
    parts = ["<xml>"]
    for name, value in fields:
        if value is None:
            continue
        if isinstance(value, _Raw):
            parts.append(f"<{name}>{value.text}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}>{cdata(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


class _Raw:
    """Pre-rendered XML inside an element (nested lists of subscribe_msg events)."""

    def __init__(self, text: str):
        self.text = text


class SimulatorError(Exception):
    """The webhook's answer breaks the protocol in a way WeChat would refuse (bad reply signature…)."""


@dataclass
class SimReply:
    status_code: int | None
    raw: str
    xml: str | None = None  # decrypted (or plain) reply XML, None for "success"/empty/garbage
    content: str | None = None  # the reply's text Content
    msg_type: str | None = None
    fields: dict = field(default_factory=dict)  # top-level elements of the reply XML
    encrypted: bool = False
    problems: list = field(default_factory=list)  # what WeChat would refuse
    timed_out: bool = False
    elapsed: float = 0.0
    request: dict = field(default_factory=dict)  # query, body, plain XML that were sent

    @property
    def is_ack(self) -> bool:
        """The literal ``success`` or an empty body: WeChat shows nothing and stops retrying."""
        return self.status_code == 200 and self.raw.strip() in ("", "success")

    @property
    def ok(self) -> bool:
        """WeChat would accept this answer (and stop retrying)."""
        return self.status_code == 200 and not self.problems and not self.timed_out


class WeChatSimulator:
    def __init__(self, url: str, token: str, appid: str, encoding_aes_key: str | None = None,
                 mode: str = "safe", account: str = "gh_fake_account", timeout: float = WECHAT_TIMEOUT,
                 strict: bool = True, session: requests.Session | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode != "plaintext" and not encoding_aes_key:
            raise ValueError(f"mode {mode!r} needs an encoding_aes_key (43 characters)")
        if encoding_aes_key is not None and len(encoding_aes_key) != 43:
            raise ValueError("encoding_aes_key must be 43 characters")
        self.url = url
        self.token = token
        self.appid = appid
        self.encoding_aes_key = encoding_aes_key
        self.mode = mode
        self.account = account
        self.timeout = timeout
        self.strict = strict
        self._session = session
        self._local = threading.local()  # requests.Session per thread: concurrent sends are safe
        self._crypto = WeChatCrypto(token, encoding_aes_key, appid) if encoding_aes_key else None
        # The latest text replies received, in order (tests scan them for what residents must not see).
        self.contents: collections.deque[str] = collections.deque(maxlen=10_000)

    # ------------------------------------------------------------------ HTTP
    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    @staticmethod
    def _nonce() -> str:
        return str(secrets.randbelow(10**10))

    # ------------------------------------------------------------------ message builders (plain XML)
    def build_text(self, openid: str, content: str, msg_id: int | None = None,
                   create_time: int | None = None) -> str:
        return _xml([
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "text"),
            ("Content", content), ("MsgId", int(msg_id if msg_id is not None else next_msg_id())),
        ])

    def build_voice(self, openid: str, recognition: str | None = None, msg_id: int | None = None,
                    media_id: str | None = None, fmt: str = "amr", create_time: int | None = None) -> str:
        return _xml([
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "voice"),
            ("MediaId", media_id or "media_" + secrets.token_hex(8)), ("Format", fmt),
            ("Recognition", recognition),
            ("MsgId", int(msg_id if msg_id is not None else next_msg_id())),
        ])

    def build_image(self, openid: str, pic_url: str = "http://mmbiz.qpic.cn/fake.jpg", media_id: str | None = None,
                    msg_id: int | None = None, create_time: int | None = None) -> str:
        return _xml([
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "image"),
            ("PicUrl", pic_url), ("MediaId", media_id or "media_" + secrets.token_hex(8)),
            ("MsgId", int(msg_id if msg_id is not None else next_msg_id())),
        ])

    def build_location(self, openid: str, lat: float, lng: float, label: str = "", scale: int = 15,
                       msg_id: int | None = None, create_time: int | None = None) -> str:
        return _xml([
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "location"),
            ("Location_X", _Raw(str(lat))), ("Location_Y", _Raw(str(lng))), ("Scale", int(scale)),
            ("Label", label), ("MsgId", int(msg_id if msg_id is not None else next_msg_id())),
        ])

    def build_event(self, openid: str, event: str, event_key: str | None = None, ticket: str | None = None,
                    create_time: int | None = None, **extra: Any) -> str:
        """Events: subscribe (``event_key="qrscene_<scene>"`` adds a Ticket), SCAN, unsubscribe, CLICK,
        VIEW, LOCATION (``latitude=…, longitude=…, precision=…``), TEMPLATESENDJOBFINISH,
        MASSSENDJOBFINISH (``MsgID=…, Status=…``), … Extra keyword arguments become elements."""
        fields: list[tuple[str, Any]] = [
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "event"), ("Event", event),
        ]
        if event in ("subscribe", "SCAN") and event_key:
            fields.append(("EventKey", event_key))
            fields.append(("Ticket", ticket or "gQF" + secrets.token_urlsafe(16)))
        elif event == "LOCATION":
            fields.append(("Latitude", _Raw(str(extra.pop("latitude", 23.137466)))))
            fields.append(("Longitude", _Raw(str(extra.pop("longitude", 113.352425)))))
            fields.append(("Precision", _Raw(str(extra.pop("precision", 119.385040)))))
        elif event_key is not None or event in ("subscribe", "unsubscribe", "CLICK", "VIEW"):
            fields.append(("EventKey", event_key or ""))
        for name, value in extra.items():
            fields.append((name, value))
        return _xml(fields)

    def build_subscribe_msg_event(self, openid: str, event: str, items: list[tuple[str, str]],
                                  create_time: int | None = None) -> str:
        """subscribe_msg_popup_event / subscribe_msg_change_event with ``[(template_id, "accept"|"reject")]``."""
        wrapper = {"subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
                   "subscribe_msg_change_event": "SubscribeMsgChangeEvent"}[event]
        lists = "".join(
            f"<List><TemplateId>{cdata(tid)}</TemplateId>"
            f"<SubscribeStatusString>{cdata(status)}</SubscribeStatusString>"
            + ("<PopupScene>2</PopupScene>" if event == "subscribe_msg_popup_event" else "")
            + "</List>"
            for tid, status in items)
        return _xml([
            ("ToUserName", self.account), ("FromUserName", openid),
            ("CreateTime", int(create_time or time.time())), ("MsgType", "event"), ("Event", event),
            (wrapper, _Raw(lists)),
        ])

    # ------------------------------------------------------------------ envelope
    def envelope(self, plain_xml: str, timestamp: str | int | None = None,
                 nonce: str | None = None) -> tuple[dict, str]:
        """(query, body) WeChat would send for this plain message in the configured mode."""
        timestamp = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or self._nonce()
        openid = _find(plain_xml, "FromUserName")
        query = {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if openid:
            query["openid"] = openid
        if self.mode == "plaintext":
            return query, plain_xml
        encrypt = PrpCrypto(self._crypto.key).encrypt(plain_xml, self.appid)
        encrypt = encrypt.decode() if isinstance(encrypt, bytes) else encrypt
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sign(self.token, timestamp, nonce, encrypt)
        if self.mode == "safe":
            body = _xml([("ToUserName", _find(plain_xml, "ToUserName") or self.account), ("Encrypt", encrypt)])
        else:
            body = plain_xml.replace("</xml>", f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>")
        return query, body

    # ------------------------------------------------------------------ sending
    def post(self, plain_xml: str, timestamp: str | int | None = None, nonce: str | None = None) -> SimReply:
        """Deliver one plain message (wrapped for the mode, signed) and check the reply."""
        query, body = self.envelope(plain_xml, timestamp=timestamp, nonce=nonce)
        return self._post(query, body, plain_xml)

    def send_text(self, openid: str, content: str, msg_id: int | None = None,
                  timestamp: str | int | None = None, create_time: int | None = None) -> SimReply:
        return self.post(self.build_text(openid, content, msg_id, create_time), timestamp=timestamp)

    def send_voice(self, openid: str, recognition: str | None = None, msg_id: int | None = None,
                   timestamp: str | int | None = None, **kw) -> SimReply:
        return self.post(self.build_voice(openid, recognition, msg_id, **kw), timestamp=timestamp)

    def send_image(self, openid: str, timestamp: str | int | None = None, **kw) -> SimReply:
        return self.post(self.build_image(openid, **kw), timestamp=timestamp)

    def send_location(self, openid: str, lat: float, lng: float, label: str = "",
                      timestamp: str | int | None = None, **kw) -> SimReply:
        return self.post(self.build_location(openid, lat, lng, label, **kw), timestamp=timestamp)

    def send_event(self, openid: str, event: str, event_key: str | None = None,
                   timestamp: str | int | None = None, **kw) -> SimReply:
        return self.post(self.build_event(openid, event, event_key, **kw), timestamp=timestamp)

    def send_subscribe_msg_event(self, openid: str, items: list[tuple[str, str]],
                                 event: str = "subscribe_msg_popup_event",
                                 timestamp: str | int | None = None) -> SimReply:
        return self.post(self.build_subscribe_msg_event(openid, event, items), timestamp=timestamp)

    def deliveries(self, plain_xml: str, n: int = 3, concurrent: bool = False,
                   timestamp: str | int | None = None) -> list[SimReply]:
        """Deliver the same message ``n`` times, as WeChat does when an answer is late (3 in all).
        Each delivery has a fresh nonce/signature; the message (MsgId, CreateTime) is identical.
        ``concurrent=True`` sends them at once (a retry arriving while the first is still processed)."""
        if not concurrent:
            return [self.post(plain_xml, timestamp=timestamp) for _ in range(n)]
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(lambda _: self.post(plain_xml, timestamp=timestamp), range(n)))

    def concurrently(self, calls: list[Callable[[], SimReply]], workers: int = 8) -> list[SimReply]:
        """Run several sends at once: ``sim.concurrently([lambda: sim.send_text(...), ...])``."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda f: f(), calls))

    def send_raw(self, xml_body: str | bytes, sign: bool = True, encrypt: bool = False,
                 timestamp: str | int | None = None, query: dict | None = None) -> SimReply:
        """Post a body as-is (malformed-input tests). ``sign`` adds a valid signature (and msg_signature
        over the body's <Encrypt>, if any, in aes modes); ``encrypt`` wraps the raw text for the mode
        first; ``query`` overrides/extends the query parameters."""
        text = xml_body.decode("utf-8", "replace") if isinstance(xml_body, bytes) else xml_body
        if encrypt:
            q, body = self.envelope(text, timestamp=timestamp)
        else:
            body = xml_body
            q = {}
            if sign:
                ts = str(timestamp if timestamp is not None else int(time.time()))
                nonce = self._nonce()
                q = {"signature": wechat_signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
                openid = _find(text, "FromUserName")
                if openid:
                    q["openid"] = openid
                if self.mode != "plaintext":
                    q["encrypt_type"] = "aes"
                    enc = _find(text, "Encrypt")
                    if enc is not None:
                        q["msg_signature"] = wechat_signature(self.token, ts, nonce, enc)
        if not sign:
            for k in ("signature", "msg_signature"):
                q.pop(k, None)
        if query:
            q.update(query)
        return self._post(q, body, None)

    def verify_url(self, echostr: str = "abc", timestamp: str | int | None = None,
                   nonce: str | None = None, signature: str | None = None) -> str:
        """The GET handshake WeChat does when the server URL is configured; returns the body."""
        timestamp = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or self._nonce()
        params = {"signature": signature or sign(self.token, timestamp, nonce), "timestamp": timestamp,
                  "nonce": nonce, "echostr": echostr}
        resp = self._http().get(self.url, params=params, timeout=self.timeout)
        return resp.text

    # ------------------------------------------------------------------ reply checking
    def _post(self, query: dict, body: str | bytes, plain_xml: str | None) -> SimReply:
        data = body.encode("utf-8") if isinstance(body, str) else body
        request = {"query": dict(query), "body": body, "plain_xml": plain_xml}
        started = time.monotonic()
        try:
            resp = self._http().post(self.url, params=query, data=data, timeout=self.timeout,
                                     headers={"Content-Type": "text/xml"})
        except requests.Timeout:
            return SimReply(status_code=None, raw="", timed_out=True, elapsed=time.monotonic() - started,
                            problems=[f"no answer within {self.timeout}s: WeChat would retry"], request=request)
        reply = SimReply(status_code=resp.status_code, raw=resp.text, elapsed=time.monotonic() - started,
                         request=request)
        self._check_reply(reply, plain_xml)
        return reply

    def _check_reply(self, reply: SimReply, plain_xml: str | None) -> None:
        if reply.status_code != 200:
            reply.problems.append(f"HTTP {reply.status_code}")
            return
        raw = reply.raw.strip()
        if raw in ("", "success"):
            return
        try:
            root = ET.fromstring(raw)
        except ET.ParseError:
            reply.problems.append("reply is neither 'success' nor XML")
            return
        fields = {child.tag: (child.text or "") for child in root}
        if "Encrypt" in fields:
            reply.encrypted = True
            if self._crypto is None:
                reply.problems.append("encrypted reply but no EncodingAESKey configured")
                return
            try:
                plain = self._crypto.decrypt_message(raw, fields.get("MsgSignature", ""),
                                                     fields.get("TimeStamp", ""), fields.get("Nonce", ""))
            except (InvalidSignatureException, InvalidAppIdException, ValueError, TypeError, KeyError) as exc:
                problem = f"encrypted reply rejected: {type(exc).__name__}"
                if self.strict:
                    raise SimulatorError(problem) from exc
                reply.problems.append(problem)
                return
            plain = plain.decode("utf-8") if isinstance(plain, bytes) else plain
            try:
                root = ET.fromstring(plain)
            except ET.ParseError:
                reply.problems.append("decrypted reply is not XML")
                return
            fields = {child.tag: (child.text or "") for child in root}
            reply.xml = plain
        else:
            reply.xml = raw
            if self.mode == "safe" and plain_xml is not None:
                reply.problems.append("plaintext reply in safe mode")
        reply.fields = fields
        reply.msg_type = fields.get("MsgType")
        if reply.msg_type == "text":
            reply.content = fields.get("Content")
            if reply.content:
                self.contents.append(reply.content)
            if reply.content is not None and len(reply.content.encode("utf-8")) > REPLY_CONTENT_LIMIT:
                reply.problems.append(f"text reply longer than {REPLY_CONTENT_LIMIT} bytes")
        if not reply.msg_type:
            reply.problems.append("reply without MsgType")
        if plain_xml is not None:
            sender = _find(plain_xml, "FromUserName")
            account = _find(plain_xml, "ToUserName")
            if fields.get("ToUserName") != sender:
                reply.problems.append("reply ToUserName is not the sender's openid")
            if fields.get("FromUserName") != account:
                reply.problems.append("reply FromUserName is not the official account")


def _find(xml_text: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</{tag}>", xml_text, re.S)
    if not m:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)
