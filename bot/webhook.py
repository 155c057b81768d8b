"""The official account's server URL, `/wechat`: verify, decrypt, parse, hand to the domain, reply.

Everything that can be checked before touching the database is: body size, signature (on every POST),
timestamp freshness, AES message signature and appid, XML shape. A request failing any of them gets a
clear 4xx and changes nothing. The domain work (classify, route, store) happens inside the request —
milliseconds, well inside WeChat's 5 seconds — so the passive reply can name the case and its handler.
"""
from __future__ import annotations

import functools
import logging
import time
from datetime import timedelta
from xml.parsers.expat import ExpatError

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from liaison.conversation import service as inbox
from liaison.core import db, tenant
from liaison.wechat.privacy import mask

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _settings():
    return current_app.config["SETTINGS"]


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _check_query_signature(check_freshness: bool = True) -> tuple[str, str]:
    settings = _settings()
    signature = request.args.get("signature", "")
    timestamp = request.args.get("timestamp", "")
    nonce = request.args.get("nonce", "")
    try:
        check_signature(settings.wechat_token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise BadRequest(403, "invalid signature") from None
    if not check_freshness:
        return timestamp, nonce
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        raise BadRequest(403, "invalid timestamp") from None
    if skew > settings.webhook_max_clock_skew_seconds:
        raise BadRequest(403, "stale timestamp")
    return timestamp, nonce


def _cryptos() -> list[WeChatCrypto]:
    """Current key first, then the previous one (kept during a key rotation)."""
    settings = _settings()
    return _cryptos_for(settings.wechat_token, settings.wechat_app_id, settings.wechat_encoding_aes_key,
                        settings.wechat_previous_encoding_aes_key)


@functools.lru_cache(maxsize=4)
def _cryptos_for(token: str, app_id: str, *keys: str | None) -> list[WeChatCrypto]:
    return [WeChatCrypto(token, key, app_id) for key in keys if key]


def _decrypt(body: bytes, timestamp: str, nonce: str) -> tuple[str, WeChatCrypto]:
    msg_signature = request.args.get("msg_signature", "")
    cryptos = _cryptos()
    if not cryptos:
        raise BadRequest(400, "encrypted message but no EncodingAESKey configured")
    last_error: Exception | None = None
    for crypto in cryptos:
        try:
            return crypto.decrypt_message(body, msg_signature, timestamp, nonce), crypto
        except InvalidSignatureException:
            raise BadRequest(403, "invalid msg_signature") from None
        except InvalidAppIdException:
            raise BadRequest(403, "appid mismatch") from None
        except Exception as error:  # wrong key (bad padding) or malformed payload: try the next key
            last_error = error
    log.info("could not decrypt message: %s", type(last_error).__name__)
    raise BadRequest(400, "cannot decrypt message")


def _incoming(msg) -> inbox.Incoming:
    data = msg._data
    msg_type = (data.get("MsgType") or "").lower()
    content = data.get("Content")
    if msg_type == "voice":
        content = data.get("Recognition")

    def number(name):
        try:
            return float(data[name]) if data.get(name) is not None else None
        except ValueError:
            return None

    try:
        create_time = int(data.get("CreateTime") or 0)
    except ValueError:
        raise BadRequest(400, "invalid CreateTime") from None
    openid = data.get("FromUserName")
    if not openid or not msg_type:
        raise BadRequest(400, "missing FromUserName or MsgType")
    return inbox.Incoming(
        subscriptions=_subscriptions(data), report=_mass_report(data),
        openid=openid, msg_type=msg_type, create_time=create_time, msg_id=data.get("MsgId"),
        content=content, event=(data.get("Event") or None), event_key=data.get("EventKey"),
        latitude=number("Location_X"), longitude=number("Location_Y"), label=data.get("Label"),
        media_id=data.get("MediaId"))


def _mass_report(data: dict) -> inbox.MassJobReport | None:
    """The counts of a MASSSENDJOBFINISH event (WeChat spells the id `MsgID` here)."""
    if (data.get("Event") or "").lower() != "masssendjobfinish":
        return None

    def count(tag: str) -> int | None:
        try:
            return int(data[tag]) if data.get(tag) is not None else None
        except ValueError:
            return None

    msg_id = count("MsgID")
    if not msg_id:
        return None
    return inbox.MassJobReport(msg_id=msg_id, status=data.get("Status"), total=count("TotalCount"),
                               filtered=count("FilterCount"), sent=count("SentCount"),
                               errors=count("ErrorCount"))


def _read_body(limit: int) -> bytes:
    """The request body, refused with 413 past `limit` (wechatpy's parser has no size cap)."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, "body too large")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise BadRequest(413, "body too large")
    return body


def _subscriptions(data: dict) -> tuple[tuple[str, str], ...]:
    """(template id, status) pairs of a subscribe_msg_popup/change event (one item or a list)."""
    block = data.get("SubscribeMsgPopupEvent") or data.get("SubscribeMsgChangeEvent")
    if not isinstance(block, dict):
        return ()
    items = block.get("List") or []
    items = [items] if isinstance(items, dict) else items
    return tuple((str(i.get("TemplateId")), str(i.get("SubscribeStatusString")))
                 for i in items if isinstance(i, dict) and i.get("TemplateId"))


def _process(incoming: inbox.Incoming) -> str | None:
    """Run the domain exactly once per dedup key; a repeated delivery gets the stored reply.

    Another unique violation (two first messages of one new resident racing to create them) is a
    lost race, not an error: the work is retried on a fresh transaction.
    """
    join_window = timedelta(seconds=_settings().message_join_window_seconds)
    for attempt in range(3):
        try:
            with db.session_scope() as session:
                return inbox.handle(session, incoming, join_window=join_window)
        except IntegrityError as error:
            if inbox.is_duplicate_error(error):
                break
            if attempt == 2:
                raise
    with db.session_scope() as session:
        found, reply = inbox.stored_reply(session, incoming.dedup_key)
    if not found:  # pragma: no cover - the unique violation means the row exists
        raise RuntimeError("duplicate delivery without a stored record")
    log.info("duplicate delivery %s from %s answered from store", incoming.msg_type, mask(incoming.openid))
    return reply


@bp.get("/wechat")
def verify():
    """WeChat's URL verification: echo `echostr` when the signature is right."""
    try:
        # Verification only echoes a value back; freshness matters for POSTs (replayed messages).
        _check_query_signature(check_freshness=False)
    except BadRequest as error:
        return _plain(error.message, error.status)
    return _plain(request.args.get("echostr", ""))


@bp.post("/wechat")
def receive():
    """One pushed message or event → its passive reply (or the literal `success`)."""
    try:
        body = _read_body(_settings().webhook_max_body_bytes)
        timestamp, nonce = _check_query_signature()
        crypto = None
        if request.args.get("encrypt_type", "raw").lower() == "aes":
            xml, crypto = _decrypt(body, timestamp, nonce)
        else:
            xml = body.decode("utf-8", errors="strict")
        try:
            msg = parse_message(xml)
        except (ExpatError, TypeError, KeyError, ValueError, AttributeError):
            raise BadRequest(400, "malformed XML") from None
        incoming = _incoming(msg)
    except UnicodeDecodeError:
        return _plain("body is not UTF-8", 400)
    except BadRequest as error:
        log.info("webhook refused: %s", error.message)
        return _plain(error.message, error.status)

    # The deployment's official account is the default county's. A county with its own account will
    # be reached at /wechat/<county> (its token, AES key and app id from its `counties` row).
    with tenant.use(tenant.DEFAULT):
        reply_text = _process(incoming)
    if reply_text is None:
        return _plain("success")
    reply_xml = create_reply(reply_text, msg, render=True)
    if crypto is not None:
        reply_xml = crypto.encrypt_message(reply_xml, nonce, timestamp)
    return Response(reply_xml, mimetype="application/xml")
