"""The official accounts' server URLs: verify, decrypt, parse, hand to the domain, reply.

`/wechat` is the deployment's account (WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_ENCODING_AES_KEY), serving
the default county. `/wechat/<county code>` is a county's own official account: its token, AES key and
app id come from its `counties` row (looked up briefly cached, so `manage.py county add` takes effect
without a restart) and the delivery is processed in that county's tenant scope. Every rule below
holds per account.

Everything that can be checked before touching the database is: body size, signature (on every POST),
timestamp freshness, AES message signature and appid, XML shape, and that the signed (timestamp, nonce)
pair was not used before with another body. A request failing any of them gets a clear 4xx and changes
nothing. Only encrypted bodies (verified by `msg_signature`) are believed, unless WECHAT_ALLOW_PLAINTEXT
is set (tests, demos): nobody signs a plaintext body.

The domain work (classify, route, store) happens inside the request — milliseconds, well inside
WeChat's 5 seconds — so the passive reply can name the case and its handler. While the database cannot
be written, the delivery goes to the spool (`liaison.conversation.spool`) instead and the resident is
told the answer follows; the scheduler stores it when the database is back.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from bot.nonces import NonceRegistry
from liaison.conversation import service as inbox
from liaison.conversation import spool as spooling
from liaison.core import db, tenant
from liaison.core.clock import utcnow
from liaison.tenancy import service as tenancy
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


@dataclass(frozen=True)
class Account:
    """One official account the webhook serves: whose deliveries, checked with which secrets."""

    county_id: int
    token: str
    app_id: str
    aes_keys: tuple[str, ...]  # current first, then the previous one during a rotation
    nonce_namespace: str  # "" for the deployment's account (its keys predate per-county accounts)


COUNTY_CACHE_SECONDS = 30.0  # a changed county row (new token, AES key) is believed within this time
_county_cache_lock = threading.Lock()


def _county_cache() -> dict[str, tuple[float, Account]]:
    """This app's county accounts by code, each with the time it expires (monotonic)."""
    return current_app.extensions.setdefault("liaison.webhook_county_accounts", {})


class UnknownCounty(Exception):
    """No county with this code has its own official account."""


def _default_account() -> Account:
    settings = _settings()
    keys = tuple(k for k in (settings.wechat_encoding_aes_key, settings.wechat_previous_encoding_aes_key) if k)
    return Account(tenant.DEFAULT_COUNTY_ID, settings.wechat_token, settings.wechat_app_id, keys, "")


def county_account(code: str) -> Account:
    """The official account of county `code` (cached `COUNTY_CACHE_SECONDS`); `UnknownCounty` when
    no such county exists or it has no account of its own (its residents write to the shared one).

    Misses are not cached: a county added a moment ago is found on its first delivery. While the
    database cannot be read, an expired entry is still believed, so the delivery can be spooled.
    """
    now = time.monotonic()
    cache = _county_cache()
    cached = cache.get(code)
    if cached is not None and cached[0] > now:
        return cached[1]
    if not tenancy.CODE_PATTERN.match(code):
        raise UnknownCounty(code)
    try:
        with tenant.use(tenant.all_counties("find the county of a webhook URL")), \
                db.session_scope() as session:
            county = tenancy.by_code(session, code)
            if county is None or not (county.wechat_token and county.wechat_app_id):
                raise UnknownCounty(code)
            account = Account(county.id, county.wechat_token, county.wechat_app_id,
                              tuple(k for k in (county.wechat_encoding_aes_key,) if k), f"{county.id}:")
    except UnknownCounty:
        raise
    except Exception as error:
        if cached is not None and db.is_unavailable(error):
            return cached[1]
        raise
    with _county_cache_lock:
        cache[code] = (now + COUNTY_CACHE_SECONDS, account)
    return account


def _check_query_signature(account: Account, check_freshness: bool = True) -> tuple[str, str]:
    settings = _settings()
    signature = request.args.get("signature", "")
    timestamp = request.args.get("timestamp", "")
    nonce = request.args.get("nonce", "")
    try:
        check_signature(account.token, signature, timestamp, nonce)
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


def _nonces() -> NonceRegistry:
    """The app's registry of used (timestamp, nonce) pairs (Redis-backed when Redis is configured)."""
    registry = current_app.extensions.get("liaison.webhook_nonces")
    if registry is None:
        from liaison import runtime

        registry = NonceRegistry(runtime.current().redis, 2 * _settings().webhook_max_clock_skew_seconds)
        current_app.extensions["liaison.webhook_nonces"] = registry
    return registry


@functools.lru_cache(maxsize=256)
def _cryptos_for(token: str, app_id: str, *keys: str | None) -> list[WeChatCrypto]:
    """Current key first, then the previous one (kept during a key rotation)."""
    return [WeChatCrypto(token, key, app_id) for key in keys if key]


def _decrypt(account: Account, body: bytes, timestamp: str, nonce: str) -> tuple[str, WeChatCrypto]:
    msg_signature = request.args.get("msg_signature", "")
    cryptos = _cryptos_for(account.token, account.app_id, *account.aes_keys)
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


# Element text WeChat sends; a field carrying child elements or repeated is malformed (xmltodict
# would hand the domain a dict or a list). Limits are the columns the values end up in.
MAX_OPENID, MAX_MSG_TYPE, MAX_MSG_ID = 64, 32, 64


def _text(data: dict, name: str, max_length: int | None = None) -> str | None:
    """The text of a top-level element (None when absent); 400 for anything but plain text."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        if value is not None and max_length is not None and len(value) > max_length:
            raise BadRequest(400, f"{name} too long")
        return value
    raise BadRequest(400, f"{name} is not plain text")


def _incoming(msg) -> inbox.Incoming:
    data = msg._data
    msg_type = (_text(data, "MsgType", MAX_MSG_TYPE) or "").lower()
    content = _text(data, "Content")
    recognition = _text(data, "Recognition")
    if msg_type == "voice":
        content = recognition

    def number(name):
        raw = _text(data, name)
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    try:
        create_time = int(_text(data, "CreateTime") or 0)
    except ValueError:
        raise BadRequest(400, "invalid CreateTime") from None
    openid = _text(data, "FromUserName", MAX_OPENID)
    _text(data, "ToUserName", MAX_OPENID)  # the passive reply is addressed from it
    if not openid or not msg_type:
        raise BadRequest(400, "missing FromUserName or MsgType")
    msg_id = _text(data, "MsgId", MAX_MSG_ID)
    if msg_id is not None and not msg_id.strip().isdigit():
        raise BadRequest(400, "invalid MsgId")
    return inbox.Incoming(
        subscriptions=_subscriptions(data), report=_mass_report(data),
        openid=openid, msg_type=msg_type, create_time=create_time, msg_id=msg_id and msg_id.strip(),
        content=content, event=(_text(data, "Event") or None), event_key=_text(data, "EventKey"),
        latitude=number("Location_X"), longitude=number("Location_Y"), label=_text(data, "Label"),
        media_id=_text(data, "MediaId"))


def _mass_report(data: dict) -> inbox.MassJobReport | None:
    """The counts of a MASSSENDJOBFINISH event (WeChat spells the id `MsgID` here)."""
    if (data.get("Event") or "").lower() != "masssendjobfinish":
        return None

    def count(tag: str) -> int | None:
        raw = _text(data, tag)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    msg_id = count("MsgID")
    if not msg_id:
        return None
    return inbox.MassJobReport(msg_id=msg_id, status=_text(data, "Status"), total=count("TotalCount"),
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
    if not isinstance(items, list):
        raise BadRequest(400, "malformed subscription list")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(400, "malformed subscription list")
        template_id, status = _text(item, "TemplateId", 128), _text(item, "SubscribeStatusString", 32)
        if template_id:
            pairs.append((template_id, str(status)))
    return tuple(pairs)


def _spool() -> spooling.Spool | None:
    """The delivery spool (None in embedded mode: no Redis, and SQLite is a local file)."""
    if "liaison.webhook_spool" not in current_app.extensions:
        from liaison import runtime

        redis_client = runtime.current().redis
        current_app.extensions["liaison.webhook_spool"] = (
            spooling.Spool(redis_client) if redis_client is not None else None)
    return current_app.extensions["liaison.webhook_spool"]


def _claim(account: Account, timestamp: str, nonce: str, body: bytes,
           incoming: inbox.Incoming) -> tuple[bool, bool | None]:
    """Claim the signed (timestamp, nonce) pair for this body and, in the same Redis round trip, ask
    whether the spool holds this resident's earlier deliveries: (claimed, held), held None when the
    spool was not asked (no spool, or another Redis than the registry's)."""
    registry, spool = _nonces(), _spool()
    shared = spool is not None and spool.redis is registry.redis
    return registry.claim_along(account.nonce_namespace + timestamp, nonce, body,
                                spool.holds_field(incoming.openid) if shared else None)


def _process(incoming: inbox.Incoming, county_id: int = tenant.DEFAULT_COUNTY_ID,
             held: bool | None = None) -> str | None:
    """Store the delivery and return its passive reply; spool it while the database is unavailable.

    A resident with deliveries waiting in the spool has this one spooled behind them, so their
    messages are stored in the order they were sent; a retry of a spooled delivery finds it there.
    `held`: the spool's answer already fetched along with the nonce claim (None: ask it here).
    """
    spool = _spool()
    if spool is not None and (held if held is not None else spool.holds(incoming.openid)):
        return _spooled(spool, incoming, county_id)
    try:
        return _store(incoming)
    except Exception as error:
        if spool is None or not db.is_unavailable(error):
            raise
        log.warning("database unavailable (%s): delivery spooled",
                    type(getattr(error, "orig", None) or error).__name__)
        return _spooled(spool, incoming, county_id)


def _spooled(spool: spooling.Spool, incoming: inbox.Incoming, county_id: int) -> str | None:
    if not spool.put(incoming, received_at=utcnow(), county_id=county_id):
        log.info("repeated delivery %s from %s is waiting in the spool", incoming.msg_type,
                 mask(incoming.openid))
    return spooling.passive_answer(incoming)


def _store(incoming: inbox.Incoming) -> str | None:
    """Run the domain exactly once per dedup key; a repeated delivery gets the stored reply.

    Another unique violation (two first messages of one new resident racing to create them) is a
    lost race, not an error: the work is retried on a fresh transaction. So is a connection found
    dead (once): nothing was committed on it.
    """
    join_window = timedelta(seconds=_settings().message_join_window_seconds)
    reconnected = False
    for attempt in range(3):
        try:
            with db.session_scope() as session:
                return inbox.handle(session, incoming, join_window=join_window)
        except IntegrityError as error:
            if inbox.is_duplicate_error(error):
                break
            if attempt == 2:
                raise
        except DBAPIError as error:
            # A pooled connection the server closed (restart) since its last use: the pool has
            # dropped its connections; one more try on a fresh one, then the spool takes it.
            if not error.connection_invalidated or reconnected:
                raise
            reconnected = True
    with db.session_scope() as session:
        found, reply = inbox.stored_reply(session, incoming.dedup_key)
    if not found:  # pragma: no cover - the unique violation means the row exists
        raise RuntimeError("duplicate delivery without a stored record")
    log.info("duplicate delivery %s from %s answered from store", incoming.msg_type, mask(incoming.openid))
    return reply


@bp.get("/wechat")
def verify():
    """WeChat's URL verification: echo `echostr` when the signature is right."""
    return _verify(_default_account())


@bp.get("/wechat/<county_code>")
def verify_county(county_code: str):
    """The URL verification of a county's own official account."""
    try:
        account = county_account(county_code)
    except UnknownCounty:
        return _plain("unknown county", 404)
    return _verify(account)


def _verify(account: Account):
    try:
        # Verification only echoes a value back; freshness matters for POSTs (replayed messages).
        _check_query_signature(account, check_freshness=False)
    except BadRequest as error:
        return _plain(error.message, error.status)
    return _plain(request.args.get("echostr", ""))


@bp.post("/wechat")
def receive():
    """One pushed message or event → its passive reply (or the literal `success`)."""
    return _receive(_default_account())


@bp.post("/wechat/<county_code>")
def receive_county(county_code: str):
    """A delivery to a county's own official account, processed in that county."""
    try:
        account = county_account(county_code)
    except UnknownCounty:
        log.info("webhook refused: unknown county")
        return _plain("unknown county", 404)
    return _receive(account)


def _receive(account: Account):
    try:
        body = _read_body(_settings().webhook_max_body_bytes)
        timestamp, nonce = _check_query_signature(account)
        crypto = None
        if request.args.get("encrypt_type", "raw").lower() == "aes":
            # Compatible mode carries clear fields too: only the part msg_signature covers is used.
            xml, crypto = _decrypt(account, body, timestamp, nonce)
        elif _settings().wechat_allow_plaintext:
            xml = body.decode("utf-8", errors="strict")
        else:
            raise BadRequest(403, "plaintext message refused: only encrypted messages are accepted")
        if not xml.strip():
            raise BadRequest(400, "empty body")
        try:
            msg = parse_message(xml)
        except Exception:  # the parser's input is the client's: any failure is a malformed message
            raise BadRequest(400, "malformed XML") from None
        if msg is None or not isinstance(getattr(msg, "_data", None), dict):
            raise BadRequest(400, "malformed XML")
        incoming = _incoming(msg)
        claimed, held = _claim(account, timestamp, nonce, body, incoming)
        if not claimed:
            raise BadRequest(403, "nonce already used with another message")
    except UnicodeDecodeError:
        return _plain("body is not UTF-8", 400)
    except BadRequest as error:
        log.info("webhook refused: %s", error.message)
        return _plain(error.message, error.status)

    # Each official account belongs to one county: its residents, cases and replies are that county's.
    with tenant.use(tenant.county(account.county_id)):
        reply_text = _process(incoming, account.county_id, held)
    if reply_text is None:
        return _plain("success")
    reply_xml = create_reply(reply_text, msg, render=True)
    if crypto is not None:
        reply_xml = crypto.encrypt_message(reply_xml, nonce, timestamp)
    return Response(reply_xml, mimetype="application/xml")
