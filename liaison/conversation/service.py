"""What a resident's WeChat message or event means for the domain, and the passive reply it gets.

The webhook (bot/) verifies, decrypts and parses; it hands an `Incoming` here and renders the returned
text. Deduplication lives here too: one `InboundMessage` row per WeChat dedup key, inserted in the same
transaction as everything the message causes, so a retried delivery creates nothing new and gets the
reply stored the first time.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, insert, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from classifiers import get_classifier, signature, tokenize
from liaison.case import lifecycle
from liaison.case import service as cases
from liaison.case.lifecycle import Status
from liaison.case.models import Case, CaseFollower, Rating
from liaison.core import db, ratelimit, tenant
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement import broadcasts, surveys
from liaison.intake import service as intake
from liaison.media import service as media
from liaison.messaging import channels, outbox
from liaison.messaging.models import InboundMessage, OutboxMessage
from liaison.messaging.texts import brief, day, lines, rating_prompt_text, say
from liaison.people import directory
from liaison.people.models import DEPUTY_LEVEL_NAMES, Deputy, DeputyGrid, Enterprise, Grid, Resident, Station
from liaison.people.service import Principal, record_consents
from liaison.project import service as projects
from liaison.rota import service as rota

log = logging.getLogger(__name__)

MAX_CASE_TEXT = 2000
RATING_WORDS = {
    "1": "satisfied", "满意": "satisfied", "非常满意": "satisfied",
    "2": "basically_satisfied", "基本满意": "basically_satisfied",
    "3": "unsatisfied", "不满意": "unsatisfied",
}
MENU_FIND_DEPUTY, MENU_MY_CASES, MENU_RATE = "FIND_DEPUTY", "MY_CASES", "RATE"
MENU_MEET_WEDNESDAY = "MEET_WEDNESDAY"
WINDOW_EVENTS = ("subscribe", "subscribe_scan", "scan", "click")  # open a 1-minute window
# Reports on the account's own jobs: the sender is WeChat's mass-send helper ("mphelper"), not a resident.
ACCOUNT_EVENTS = ("masssendjobfinish",)


@dataclass(frozen=True)
class MassJobReport:
    """WeChat's MASSSENDJOBFINISH counts for one mass job (`msg_id` as its send call returned it)."""

    msg_id: int
    status: str | None = None     # "send success", "send fail", "err(10001)", …
    total: int | None = None
    filtered: int | None = None   # followers WeChat did not deliver to
    sent: int | None = None
    errors: int | None = None


@dataclass(frozen=True)
class Incoming:
    """A parsed WeChat push, independent of wechatpy's classes."""

    openid: str
    msg_type: str                 # text | voice | image | location | event | ...
    create_time: int
    msg_id: str | None = None
    content: str | None = None    # text content or voice recognition
    event: str | None = None      # subscribe | SCAN | CLICK | unsubscribe | ...
    event_key: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    label: str | None = None
    media_id: str | None = None
    subscriptions: tuple[tuple[str, str], ...] = ()  # (template id, accept|reject) from subscribe_msg_*
    report: MassJobReport | None = None

    @property
    def dedup_key(self) -> str:
        """WeChat's dedup key: MsgId for messages; FromUserName + CreateTime + Event for events.

        EventKey is added so two different menu taps within one second stay two events; a retry
        repeats all four fields.
        """
        if self.msg_id:
            return f"msg:{self.msg_id}"
        job = self.report.msg_id if self.report else ""  # two mass jobs may finish within one second
        key = f"evt:{self.openid}:{self.create_time}:{self.event or self.msg_type}:{self.event_key or job}"
        return key[:128]


def handle(session: Session, incoming: Incoming, *, join_window: timedelta,
           now: datetime | None = None) -> str | None:
    """Process one delivery exactly once and return its passive reply text (None = "success").

    The delivery's `InboundMessage` row is inserted last, in the same transaction: a concurrent
    delivery of the same message blocks on the unique key until this one commits and then fails
    with IntegrityError, rolling back everything it did; the caller answers it from
    `stored_reply`. Inserting last keeps the unique-key wait out of the common path.
    """
    now = now or utcnow()
    if incoming.msg_type == "event" and (incoming.event or "").lower() in ACCOUNT_EVENTS:
        _account_event(session, incoming)
        session.add(InboundMessage(dedup_key=incoming.dedup_key, msg_type=incoming.msg_type,
                                   received_at=now, reply_text=None))
        session.flush()
        return None
    resident, is_new = _resident(session, incoming, now)
    said: list[str] = []  # the intent a text message was taken for (set by _text)
    reply, case = _dispatch(session, resident, incoming, join_window, now, is_new, said)
    if case is not None and incoming.media_id and incoming.msg_type in media.KINDS:
        media.record(session, case, resident, incoming.msg_type, incoming.media_id)  # kept past WeChat's 3 days
    ask = None  # a new follower's unionid request, written with the record on PostgreSQL
    if is_new:
        if session.get_bind().dialect.name == "postgresql":
            ask = _unionid_request(resident)
        else:  # added last: its row joins the other outbox rows of this delivery in one INSERT
            _learn_unionid(session, resident)
    text = (incoming.content or "")[:MAX_CASE_TEXT] if incoming.msg_type in ("text", "voice") else None
    session.flush()  # what the delivery caused (notices, outbox rows), then its record
    # The record is written by one Core INSERT: nothing in the transaction reads it back, so it need
    # not be an ORM object (a unit of work for one row cost more than the statement). Its county is
    # the resident's, as the ORM's tenant fill would give it (`liaison.core.tenant`).
    record = {
        "dedup_key": incoming.dedup_key, "msg_type": incoming.msg_type, "received_at": now,
        "resident_id": resident.id, "case_id": case.id if case is not None else None,
        "reply_text": reply, "intent": said[0] if said else None, "text": text or None,
        "county_id": resident.county_id}
    if ask is None:
        db.run(session, _record_insert(), record)  # straight to the driver: none of the ORM's execution
        return reply
    # The record and the unionid request in one statement (the record a CTE of the outbox INSERT).
    kind, key, payload = ask
    params = {**{f"r_{name}": value for name, value in record.items()},
              "o_kind": kind, "o_dedup_key": key, "o_payload": payload, "o_created_at": now,
              "o_county_id": resident.county_id,
              **{f"o_{name}": value for name, value in outbox.initial_state(now).items()}}
    outbox.inserted_fresh(session, [outbox_id for outbox_id, in db.run(session, _record_with_request(), params)])
    return reply


@lru_cache(maxsize=1)
def _record_insert():
    """INSERT INTO inbound_messages (the record's columns) VALUES (…), built once."""
    records = InboundMessage.__table__
    return insert(records).values({name: bindparam(name, type_=records.c[name].type) for name in RECORD_COLUMNS})


# What `handle` writes of a delivery's record (the other columns are the database's).
RECORD_COLUMNS = ("dedup_key", "msg_type", "received_at", "resident_id", "case_id", "reply_text", "intent", "text",
                  "county_id")


@lru_cache(maxsize=1)
def _record_with_request():
    """WITH record AS (INSERT INTO inbound_messages …) INSERT INTO outbox … RETURNING id."""
    records, requests = InboundMessage.__table__, OutboxMessage.__table__
    record = insert(records).values({name: bindparam(f"r_{name}", type_=records.c[name].type)
                                     for name in RECORD_COLUMNS}).cte("record")
    values = {name: bindparam(f"o_{name}", type_=requests.c[name].type) for name in (
        "kind", "dedup_key", "payload", "created_at", "county_id", "status", "next_attempt_at", "lease_until")}
    return (insert(requests).values(attempts=literal(0), **values)
            .returning(requests.c.id).add_cte(record))


def _account_event(session: Session, incoming: Incoming) -> None:
    """MASSSENDJOBFINISH: WeChat's count of what a broadcast's mass job reached."""
    report = incoming.report
    if report is None:
        return
    batch = broadcasts.record_mass_report(session, report.msg_id, status=report.status, total=report.total,
                                          filtered=report.filtered, sent=report.sent, errors=report.errors)
    if batch is None:  # a mass send made outside this system (e.g. from the WeChat admin console)
        log.info("report of unknown mass job %s ignored", report.msg_id)


def stored_reply(session: Session, dedup_key: str) -> tuple[bool, str | None]:
    """(found, reply) for an already processed delivery."""
    record = session.scalar(select(InboundMessage).where(InboundMessage.dedup_key == dedup_key))
    if record is None:
        return False, None
    return True, record.reply_text


def is_duplicate_error(error: IntegrityError) -> bool:
    return "inbound_messages" in str(error.orig) or "dedup_key" in str(error.orig)


def _resident(session: Session, incoming: Incoming, now: datetime) -> tuple[Resident, bool]:
    """The resident behind an official-account openid, created on first contact (and whether new).

    On PostgreSQL one statement finds or creates the row (`_find_or_insert_resident`): a new
    resident is inserted with the fields this delivery sets (`_touch`), so it needs no flush of its
    own. Elsewhere a new row is flushed by `_dispatch` once its fields are set: one INSERT, no UPDATE.
    """
    openid = incoming.openid
    if session.get_bind().dialect.name == "postgresql":
        found = _find_or_insert_resident(session, incoming, now)
        if found is not None:
            return found
    resident = session.scalar(select(Resident).where(Resident.oa_openid == openid))
    if resident is not None:
        return resident, False
    resident = Resident(oa_openid=openid, window_used=0)
    session.add(resident)
    return resident, True


def _find_or_insert_resident(session: Session, incoming: Incoming, now: datetime
                             ) -> tuple[Resident, bool] | None:
    """The resident of `incoming.openid` in one round trip: the existing row, else a new one inserted
    with what this delivery sets on it (`_touch` on a transient resident), loaded as a persistent
    object either way (`_dispatch` does not touch a new one again: nothing left for a flush).

    None when neither part returned a row (not expected: the INSERT runs exactly when nothing was
    found); the caller's plain lookup follows. The lookup names the scope's counties itself (the
    tenant criteria do not rewrite a given statement); the new row's county is the write county (the
    column's default, RLS-checked).
    """
    draft = Resident(oa_openid=incoming.openid, window_used=0)
    _touch(draft, incoming, now)
    # What the draft says and the model's Python defaults (public id, created_at, …), as an ORM
    # INSERT would send them; the county from the column's server default.
    values = {key: value for key, value in db.insert_values(draft).items() if value is not None}
    scope = tenant.of(session)
    statement = _resident_upsert(tuple(values), scoped=not scope.every_county)
    params = {f"v_{key}": value for key, value in values.items()}
    if not scope.every_county:  # the domain's county criteria, which a given statement does not get
        params["county_ids"] = sorted(scope.county_ids)
    # Straight to the driver (`db.run`) and adopted (`db.adopt`): the ORM's execute and load of one
    # row cost more than the statement.
    rows = db.run(session, statement, params)
    if not rows:
        return None
    is_new, *columns = rows[0]
    return db.adopt(session, Resident, dict(zip(_RESIDENT_KEYS, columns))), bool(is_new)


@lru_cache(maxsize=16)
def _resident_upsert(columns: tuple[str, ...], scoped: bool):
    """The statement of `_find_or_insert_resident` for one set of given columns (a few: messages,
    events), built once: `found` the existing row (in the scope's counties when `scoped`), else
    `inserted` (nothing when `found` has it)."""
    table = Resident.__table__
    condition = table.c.oa_openid == bindparam("v_oa_openid")
    if scoped:
        condition &= tenant.in_county_ids(table.c.county_id, postgresql=True)  # a PostgreSQL statement
    found = select(table).where(condition).cte("found")
    # No ON CONFLICT: the dialect's INSERT … ON CONFLICT is not cacheable (compiled per message).
    # A concurrent first delivery of the same resident makes this INSERT wait for its commit and
    # fail on the unique key: the webhook retries the delivery, which then finds the row.
    inserted = (insert(table)
                .from_select(list(columns), select(*[bindparam(f"v_{c}", type_=table.c[c].type)
                                                     for c in columns])
                             .where(~exists(select(found.c.id))))
                .returning(*table.c).cte("inserted"))
    return union_all(select(literal(False).label("is_new"), *found.c),
                     select(literal(True).label("is_new"), *inserted.c))


_RESIDENT_KEYS = tuple(column.key for column in Resident.__table__.columns)  # `_resident_upsert`'s order


def _opens_window(incoming: Incoming) -> bool:
    """Whether the delivery opens a customer-service window: any message, and the events of
    `WINDOW_EVENTS`."""
    return incoming.msg_type != "event" or (incoming.event or "").lower() in WINDOW_EVENTS


def _touch(resident: Resident, incoming: Incoming, now: datetime) -> None:
    """What every delivery sets on its resident: when they last wrote or acted, and the customer-
    service window the action opened (`channels.open_window`)."""
    if incoming.msg_type == "event":
        resident.last_event_at = now
    else:
        resident.last_message_at = now
    if _opens_window(incoming):
        channels.open_window(resident, "event" if incoming.msg_type == "event" else "message", now)


def _unionid_request(resident: Resident) -> tuple[str, str, dict]:
    """The outbox row (kind, key, payload) asking WeChat (a worker calls user/info) who this new
    follower is across apps."""
    return "fetch_unionid", f"unionid:{resident.id}", {"resident_id": resident.id}


def _learn_unionid(session: Session, resident: Resident) -> None:
    """Queue `_unionid_request` through `outbox.add` (where the record is not written with it).

    The resident was created (and flushed) in this transaction, so the key is new: no lookup, no
    flush of its own; the row is inserted with the delivery's other outbox rows.
    """
    kind, key, payload = _unionid_request(resident)
    outbox.add(session, kind, key, payload, new_key=True)


def _dispatch(session: Session, resident: Resident, incoming: Incoming, join_window: timedelta,
              now: datetime, is_new: bool, said: list[str]) -> tuple[str | None, Case | None]:
    if not (is_new and resident.id is not None):  # a new row with an id was inserted touched
        _touch(resident, incoming, now)
    if not is_new and _opens_window(incoming):
        _window_opened(session, resident, now)
    if resident.id is None:
        session.flush()  # its id: rate-limit keys, outbox keys and timeline actors below name the resident
    if incoming.msg_type == "event":
        return _event(session, resident, incoming), None
    if incoming.msg_type in ("text", "voice"):
        text = (incoming.content or "").strip()
        if not text:
            if incoming.msg_type == "voice":
                return say("voice_unrecognized"), None
            return None, None
        return _text(session, resident, text, join_window, now, is_new, said)
    if incoming.msg_type == "location":
        case = _recent_open_case(session, resident, now, join_window)
        if case is None:
            return say("location_without_case"), None
        case.location = {"lat": incoming.latitude, "lng": incoming.longitude,
                         "label": incoming.label, "coord": "gcj02"}
        cases.add_information(session, case, cases.Actor("resident", resident.id),
                              f"[位置] {incoming.label or ''}".strip())
        return say("location_added", number=case.number), case
    if incoming.msg_type == "image":
        case = _recent_open_case(session, resident, now, join_window)
        if case is None:
            return say("image_without_case"), None
        cases.add_information(session, case, cases.Actor("resident", resident.id),
                              f"[图片] {incoming.media_id or ''}".strip())
        return say("image_added", number=case.number), case
    return None, None


def _window_opened(session: Session, resident: Resident, now: datetime) -> None:
    """A user action opened a customer-service window (`_touch`): messages waiting for one may go
    now. Not called for a new resident: nothing can be waiting for someone we have never seen."""
    outbox.release_waiting(session, resident.id, limit=channels.window_remaining(resident, now))


# --- what a text message is --------------------------------------------------------------------
# Told apart before anything is opened. Each kind is one detector (in `DETECTORS`, checked in order,
# the first that answers wins) and one handler (in `HANDLERS`); a new kind of message is one detector
# and one handler added to the two tables. Every decision is logged with its reason (no personal data:
# the resident's public id, never the openid or the text).

CASE_NUMBER = re.compile(r"(?<!\d)(20\d{2})\s*[-－—_]?\s*(\d{6})(?!\d)")
_PUNCT = re.compile(r"[\s，,。.!！?？~～、；;：:…\-—_“”\"'（）()【】\[\]]+")
GREETINGS = ("你好", "您好", "在吗", "在不在", "有人吗", "有人在吗", "哈喽", "嗨", "hello", "hi",
             "早上好", "上午好", "中午好", "下午好", "晚上好", "早", "你好啊", "您好啊", "喂")
THANKS = ("谢谢", "谢谢你", "谢谢您", "谢谢你们", "感谢", "感谢你们", "多谢", "辛苦了", "辛苦了谢谢",
          "好的", "好的谢谢", "好", "好滴", "嗯", "嗯嗯", "收到", "知道了", "明白了", "ok", "okay", "行",
          "👍", "谢谢代表", "麻烦了", "麻烦你们了")
STATUS_PHRASES = ("我的诉求", "我反映的", "我的问题", "我提的", "我投诉的", "进展", "进度", "怎么样了",
                  "有结果", "有消息", "处理了没", "处理了吗", "办了没", "办了吗", "办得怎么样", "查询诉求",
                  "查一下", "有回复", "还没人管", "怎么还没")
# Markers that announce a second matter while the first is still being written.
NEW_MATTER_MARKERS = ("另外", "还有一个问题", "还有一件事", "还有个问题", "还有件事", "再反映一个", "再反映个",
                      "另一个问题", "另一件事", "顺便反映", "顺便说一下", "还要反映", "再说一个")
# A piece that only says where or since when belongs to the matter being written.
_PLACE_OR_TIME = re.compile(r"^(就?在|位于|地点|地址|是在|从|自从|已经|都|好几|大概|差不多|快)")
STATUS_QUESTION_MAX = 24      # longer texts with 进展/怎么样了 are a matter, not a question
TOPIC_SWITCH_MIN_CHARS = 8    # a piece shorter than this never starts a new matter on its own
TOPIC_SWITCH_CONFIDENCE = 0.8


@dataclass
class Turn:
    """One text message and what we know around it."""

    session: Session
    resident: Resident
    text: str
    now: datetime
    join_window: timedelta
    is_new: bool
    bare: str = ""                 # the text without spaces and punctuation, lower case
    recent: Case | None = None     # the resident's open case written to within the join window
    _recent_loaded: bool = False

    def __post_init__(self):
        self.bare = _PUNCT.sub("", self.text).lower()

    def open_recent(self) -> Case | None:
        if not self._recent_loaded:
            self._recent_loaded = True
            if not self.is_new:
                self.recent = _recent_open_case(self.session, self.resident, self.now, self.join_window)
        return self.recent


@dataclass(frozen=True)
class Intent:
    kind: str                      # a key of HANDLERS
    reason: str                    # why, for the log (never the text itself)
    data: dict | None = None


def _text(session: Session, resident: Resident, text: str, join_window: timedelta,
          now: datetime, is_new: bool, said: list[str]) -> tuple[str | None, Case | None]:
    turn = Turn(session, resident, text[:MAX_CASE_TEXT], now, join_window, is_new)
    intent = understand(turn)
    said.append(intent.kind)
    log.info("message from resident %s: %s (%s)", resident.public_id, intent.kind, intent.reason)
    return HANDLERS[intent.kind](turn, intent)


def understand(turn: Turn) -> Intent:
    """What the message is: the first detector that recognises it; else a new matter."""
    for detector in DETECTORS:
        intent = detector(turn)
        if intent is not None:
            return intent
    return Intent("new_matter", "a matter of its own")


# --- detectors (each: Turn -> Intent | None) ---------------------------------------------------------
def _detect_survey_vote(turn: Turn) -> Intent | None:
    if turn.is_new:
        return None
    # A reply 1/2/3 right after scanning a survey code is the vote (answer_from_chat records it).
    answer = surveys.answer_from_chat(turn.session, turn.resident, turn.text, turn.now)
    return Intent("survey_vote", "answer to a pending survey", {"reply": answer}) if answer else None


def _detect_rating(turn: Turn) -> Intent | None:
    rating = RATING_WORDS.get(re.sub(r"[\s。.!！]", "", turn.text))
    if rating is None or turn.is_new:
        return None
    case = _awaiting_rating(turn.session, turn.resident)
    if case is None:
        return None
    return Intent("rating", "rating word with a case awaiting rating", {"case": case, "value": rating})


def _detect_case_number(turn: Turn) -> Intent | None:
    match = CASE_NUMBER.search(turn.text)
    if match is None:
        return None
    rest = _PUNCT.sub("", CASE_NUMBER.sub("", turn.text))
    if len(rest) > STATUS_QUESTION_MAX:  # a long text that mentions a number is more about that case
        return None
    return Intent("case_status", "case number", {"number": f"{match.group(1)}-{match.group(2)}"})


def _detect_status_question(turn: Turn) -> Intent | None:
    if len(turn.bare) > STATUS_QUESTION_MAX or turn.bare.isdigit():
        return None
    phrase = next((p for p in STATUS_PHRASES if p in turn.bare), None)
    if phrase is None:
        return None
    return Intent("status_question", f"asks about their matters ({phrase})")


def _detect_small_talk(turn: Turn) -> Intent | None:
    if turn.bare in GREETINGS or (turn.bare.rstrip("呀啊哦") in GREETINGS and len(turn.bare) <= 5):
        return Intent("greeting", "greeting")
    if turn.bare in THANKS or (turn.bare.rstrip("呀啊哦了啦") in THANKS and len(turn.bare) <= 8):
        return Intent("thanks", "thanks or acknowledgement")
    return None


def _detect_too_little(turn: Turn) -> Intent | None:
    if not turn.bare:
        return Intent("too_little", "punctuation only")
    if turn.bare.isdigit():
        return Intent("too_little", "digits only", {"digits": True})
    if turn.open_recent() is not None:
        return None  # a word while writing a matter belongs to it (follow-up)
    if len(turn.bare) <= 2:
        return Intent("too_little", "one or two characters")
    if len(turn.bare) <= 6 and len(_content_words(turn.bare)) <= 1:
        return Intent("too_little", "a single word")
    return None


def _detect_follow_up(turn: Turn) -> Intent | None:
    """More for the matter being written, unless it announces or clearly is another matter."""
    recent = turn.open_recent()
    if recent is None:
        return None
    marker = next((m for m in NEW_MATTER_MARKERS if m in turn.text[:12]), None)
    if marker is not None:
        return Intent("new_matter", f"marker {marker!r} within the join window", {"previous": recent})
    other = _other_topic(turn, recent)
    if other is not None:
        return Intent("new_matter", other, {"previous": recent})
    # "路灯坏了" / "在3号楼门口" / "好几天了": one matter typed in pieces is one case (re-routed on the
    # whole text while nobody has accepted it yet; see cases.add_information).
    return Intent("follow_up", "within the join window", {"case": recent})


def _other_topic(turn: Turn, recent: Case) -> str | None:
    """Why this message is a different matter from `recent` by the classifier, or None."""
    if len(turn.bare) < TOPIC_SWITCH_MIN_CHARS or _PLACE_OR_TIME.match(turn.bare):
        return None
    if signature(turn.text) & frozenset(recent.signature or []):
        return None  # shares a keyword with the open matter
    decision = get_classifier().classify(turn.text)
    if (decision.category is None or decision.confidence < TOPIC_SWITCH_CONFIDENCE
            or recent.category is None or decision.category == recent.category):
        return None
    return f"other category by the classifier ({decision.confidence:.2f})"


def _content_words(bare: str) -> list[str]:
    """Words that carry meaning (the classifier's tokenizer, already loaded; its stop words dropped)."""
    return tokenize.content_tokens(tokenize.cut(bare))


# --- handlers (each: Turn, Intent -> (reply, case)) --------------------------------------------------
def _on_survey_vote(turn: Turn, intent: Intent):
    return intent.data["reply"], None


def _on_rating(turn: Turn, intent: Intent):
    case = intent.data["case"]
    return _rate(turn.session, case, turn.resident, intent.data["value"]), case


def _on_case_status(turn: Turn, intent: Intent):
    number = intent.data["number"]
    case = turn.session.scalar(select(Case).where(Case.number == number))
    if case is None or not _is_party(turn.session, case, turn.resident):
        return say("case_not_found", number=number), None  # someone else's case: not even its status
    return case_status_text(turn.session, case, turn.resident), case


def _on_status_question(turn: Turn, intent: Intent):
    return my_cases_text(turn.session, turn.resident), None


def _on_greeting(turn: Turn, intent: Intent):
    return say("greeting"), None


def _on_thanks(turn: Turn, intent: Intent):
    recent = turn.open_recent()
    return (say("thanks_open", number=recent.number) if recent else say("thanks")), None


def _on_too_little(turn: Turn, intent: Intent):
    # Kept (the InboundMessage row stores the text) and answered; nothing is opened.
    if (intent.data or {}).get("digits"):
        return say("too_little_digits", example=_example_number(turn.now)), None
    return say("too_little"), None


def _on_follow_up(turn: Turn, intent: Intent):
    recent = intent.data["case"]
    before = cases.handler_label(recent)
    cases.add_information(turn.session, recent, cases.Actor("resident", turn.resident.id), turn.text,
                          reroute=True)
    if cases.handler_label(recent) != before:
        return say("follow_up_rerouted", number=recent.number,
                   handler=cases.handler_sentence(recent)), recent
    return say("follow_up_added", number=recent.number), recent


def _on_new_matter(turn: Turn, intent: Intent):
    session, resident, text, now = turn.session, turn.resident, turn.text, turn.now
    actor = cases.Actor("resident", resident.id)
    grid_id = resident.grid_id or directory.get(session).grid_in_text(text)
    duplicate = cases.find_duplicate(session, text, grid_id, exclude_resident_id=resident.id, now=now)
    if duplicate is not None:
        cases.follow_case(session, duplicate, resident, text, new_resident=turn.is_new)
        return say("duplicate_followed", number=duplicate.number,
                   handler=cases.handler_sentence(duplicate)), duplicate
    if turn.is_new:  # created by this delivery: no case counted yet, so none over the limit
        ratelimit.count_new(session.info, ratelimit.CASES_PER_RESIDENT, "resident", str(resident.id))
    elif not ratelimit.hit(ratelimit.CASES_PER_RESIDENT, "resident", str(resident.id)):
        return _over_case_limit(session, resident, actor, text)
    case = cases.open_case(session, resident, text, now=now)
    previous = (intent.data or {}).get("previous")
    return _new_case_reply(case, previous), case


def _detect_duty_question(turn: Turn) -> Intent | None:
    """"周三见" / "今天谁值班": who is on duty at the resident's station (a short question, not a case)."""
    return Intent("duty_question", "asks who is on duty") if rota.is_duty_question(turn.text) else None


def _on_duty_question(turn: Turn, intent: Intent):
    return rota.duty_answer(turn.session, turn.resident, turn.now), None


# 民生实事 征集: "建议：…", "我想提个民生实事建议…". What follows the marker is the proposal.
PROJECT_PROPOSAL = re.compile(
    r"^\s*(?:民生实事)?建议\s*[：:]|民生实事(?:项目)?(?:的)?建议|(?:提|报|征集)(?:一?个|一条|点)?民生实事")
_PROPOSAL_LEAD = re.compile(r"^[\s，,。.!！：:、]*(?:项目)?的?(?:建议)?[\s，,。.!！：:、]*(?:是|就是|如下)?[\s，,。.!！：:、]*")
PROPOSAL_MIN_CHARS = 4  # less than this after the marker: tell them how to write one


def _detect_project_proposal(turn: Turn) -> Intent | None:
    found = PROJECT_PROPOSAL.search(turn.text)
    if found is None:
        return None
    content = _PROPOSAL_LEAD.sub("", turn.text[found.end():], count=1).strip()
    return Intent("project_proposal", "a 民生实事 proposal", {"content": content})


def _on_project_proposal(turn: Turn, intent: Intent):
    content = intent.data["content"]
    if len(_PUNCT.sub("", content)) < PROPOSAL_MIN_CHARS:
        return say("project_proposal_how"), None
    title = content.splitlines()[0][:100]
    proposal = projects.propose(turn.session, Principal("resident", resident=turn.resident), title,
                                content if content != title else None)
    return say("project_proposal_received", title=brief(proposal.title, 30)), None


DETECTORS = [_detect_survey_vote, _detect_duty_question, _detect_project_proposal, _detect_rating, _detect_case_number,
             _detect_status_question, _detect_small_talk, _detect_too_little, _detect_follow_up]
HANDLERS = {
    "survey_vote": _on_survey_vote, "rating": _on_rating, "case_status": _on_case_status,
    "status_question": _on_status_question, "greeting": _on_greeting, "thanks": _on_thanks,
    "too_little": _on_too_little, "follow_up": _on_follow_up, "new_matter": _on_new_matter,
    "duty_question": _on_duty_question, "project_proposal": _on_project_proposal,
}


def _example_number(now: datetime) -> str:
    return f"{now.astimezone(CHINA_TZ).year}-000001"


def _over_case_limit(session: Session, resident: Resident, actor, text: str) -> tuple[str, Case | None]:
    """Too many new cases from one resident in a short time (each one pushes a notice to a deputy).

    The message is never dropped: it joins the resident's latest open case, or, with none open, the
    resident is told plainly to write again later.
    """
    latest = session.scalar(select(Case).where(Case.resident_id == resident.id,
                                               Case.status.in_(lifecycle.OPEN_STATUSES))
                            .order_by(Case.last_message_at.desc()).limit(1))
    log.info("resident %s over the new-case limit", resident.public_id)
    if latest is not None:
        cases.add_information(session, latest, actor, text)
        return say("over_limit_joined", number=latest.number, handler=cases.handler_sentence(latest)), latest
    return say("over_limit"), None


def _new_case_reply(case: Case, previous: Case | None = None) -> str:
    """Number, who handles it, by when, what next: nothing of how it was routed (that is for staff)."""
    opened = (say("case_opened_another", number=case.number, previous=previous.number) if previous
              else say("case_opened", number=case.number))
    return lines(opened, cases.handler_sentence(case),
                 say("deadline", date=day(case.deadline)) if case.deadline else None,
                 say("next_steps"))


def _is_party(session: Session, case: Case, resident: Resident) -> bool:
    return case.resident_id == resident.id or session.get(CaseFollower, (case.id, resident.id)) is not None


def case_status_text(session: Session, case: Case, resident: Resident) -> str:
    """One case's status for its resident; a follower (并单) sees status, handler and deadline, not
    the text or the summary of someone else's matter."""
    own = case.resident_id == resident.id
    if case.merged_into_id is not None:
        into = session.get(Case, case.merged_into_id)
        if into is not None:
            case = into
            own = case.resident_id == resident.id
    parts = [say("case_status", number=case.number, status=lifecycle.STATUS_LABELS[case.status])]
    if case.status in lifecycle.OPEN_STATUSES:
        parts.append(say("case_status_handler", handler=cases.handler_sentence(case)))
        if case.deadline is not None:
            parts.append(say("case_status_deadline", date=day(case.deadline)))
        parts.append(say("case_status_next_open"))
    elif case.status == Status.CLOSED:
        if own and case.summary:
            parts.append(say("case_status_summary", summary=case.summary[:200]))
        parts.append(say("case_status_next_rate"))
    elif own and case.summary:
        parts.append(say("case_status_summary", summary=case.summary[:200]))
    return lines(*parts)


def my_cases_text(session: Session, resident: Resident) -> str:
    recent = session.scalars(select(Case).where(Case.resident_id == resident.id)
                             .order_by(Case.created_at.desc()).limit(5)).all()
    # Cases they follow (并单) are someone else's: number, status and handler only, never the text.
    followed = session.scalars(select(Case).join(CaseFollower, CaseFollower.case_id == Case.id).where(
        CaseFollower.resident_id == resident.id, Case.resident_id != resident.id)
        .order_by(CaseFollower.created_at.desc()).limit(5)).all()
    if not recent and not followed:
        return say("no_cases")
    parts = []
    if recent:
        parts.append(say("my_cases_header"))
        parts += [say("my_cases_line", number=c.number, status=lifecycle.STATUS_LABELS[c.status],
                      handler=_handler_short(c), brief=brief(c.text)) for c in recent]
    if followed:
        parts.append(say("followed_cases_header"))
        parts += [say("followed_cases_line", number=c.number, status=lifecycle.STATUS_LABELS[c.status],
                      handler=_handler_short(c)) for c in followed]
    parts.append(say("my_cases_footer", example=(recent or followed)[0].number))
    return lines(*parts)


def _handler_short(case: Case) -> str:
    """Who handles it, for a list line: the department's name, else the deputy's, else the station."""
    label = cases.handler_label(case)
    return label.replace("网格代表 ", "").replace("（分派中）", "")


def _recent_open_case(session: Session, resident: Resident, now: datetime,
                      window: timedelta) -> Case | None:
    return session.scalar(
        select(Case).where(Case.resident_id == resident.id,
                           Case.status.in_(lifecycle.OPEN_STATUSES),
                           Case.last_message_at >= now - window)
        .order_by(Case.last_message_at.desc()).limit(1))


def _awaiting_rating(session: Session, resident: Resident) -> Case | None:
    own = session.scalars(select(Case).where(Case.resident_id == resident.id,
                                             Case.status == Status.CLOSED)).all()
    followed = session.scalars(select(Case).join(CaseFollower, CaseFollower.case_id == Case.id).where(
        CaseFollower.resident_id == resident.id, Case.status == Status.CLOSED)).all()
    rated = set(session.execute(select(Rating.case_id, Rating.round).where(
        Rating.resident_id == resident.id)).all())
    pending = [c for c in [*own, *followed] if (c.id, c.round) not in rated]
    pending.sort(key=lambda c: c.closed_at or c.updated_at, reverse=True)
    return pending[0] if pending else None


def _rate(session: Session, case: Case, resident: Resident, value: str) -> str:
    cases.rate(session, case, resident, value, channel="chat")
    label = cases.RATING_VALUES[value]
    if case.resident_id != resident.id:
        return say("rated_follower", number=case.number, label=label)
    if case.status == Status.RULING:
        return say("rated_ruling", number=case.number)
    if case.status == Status.REOPENED:
        return say("rated_reopened", number=case.number, round=case.round)
    return say("rated_closed", label=label, number=case.number)


def _scene_target(session: Session, scene: str) -> tuple[Grid | None, Deputy | None, Station | None]:
    kind, _, code = scene.partition(":")
    if kind == "grid":
        return session.scalar(select(Grid).where(Grid.code == code)), None, None
    if kind == "deputy":
        deputy = session.scalar(select(Deputy).where(Deputy.code == code))
        grid = None
        if deputy is not None:
            link = session.scalar(select(DeputyGrid).where(DeputyGrid.deputy_id == deputy.id)
                                  .order_by(DeputyGrid.role != "lead"))
            grid = link.grid if link else None
        return grid, deputy, None
    if kind == "station":
        return None, None, session.scalar(select(Station).where(Station.code == code))
    if kind == "enterprise":  # an enterprise's code: its enterprise grid
        enterprise = session.scalar(select(Enterprise).where(Enterprise.code == code))
        return (enterprise.grid if enterprise is not None else None), None, None
    return None, None, None


def deputy_card(deputy: Deputy, grid: Grid | None) -> str:
    """The deputy's card as shown to a resident after a scan or a 找代表 tap."""
    return lines(
        say("deputy_card", name=deputy.name, level=DEPUTY_LEVEL_NAMES.get(deputy.level, "")),
        say("deputy_card_grid", grid=grid.name) if grid is not None else None,
        say("deputy_card_duties", duties=deputy.duties) if deputy.duties else None,
        say("deputy_card_hours", hours=deputy.reception_hours) if deputy.reception_hours else None,
        say("deputy_card_station", station=deputy.station.name) if deputy.station is not None else None,
        say("deputy_card_next"))


def _event(session: Session, resident: Resident, incoming: Incoming) -> str | None:
    event = (incoming.event or "").lower()
    if event in ("subscribe", "subscribe_scan", "scan"):
        key = incoming.event_key or ""
        scene = key[len("qrscene_"):] if key.startswith("qrscene_") else key
        resident.subscribed = True
        if scene.startswith("survey:"):
            return surveys.on_scan(session, resident, scene[len("survey:"):])
        if scene.startswith(intake.SCENE_PREFIX):  # a 交办单's code: follow and rate that case
            return intake.claim(session, resident, scene[len(intake.SCENE_PREFIX):])
        if scene:
            grid, deputy, station = _scene_target(session, scene)
            if station is not None:
                checked_in = rota.scan_station(session, resident, station)  # a deputy on duty checks in
                if checked_in is not None:
                    return checked_in
                return say("station_welcome", station=station.name,
                           hours=station.reception_hours or "以公示为准")
            if grid is not None and deputy is None:
                visit = rota.scan_grid(session, resident, grid)  # a deputy visiting their grid
                if visit is not None:
                    return visit
            if deputy is not None or grid is not None:
                # 一人一码: a deputy's own code makes that deputy responsible for the resident's cases
                # (a deputy without a grid too); a grid's code hands them back to its lead deputy.
                resident.deputy_id = deputy.id if deputy is not None else None
            if deputy is not None and grid is None:
                return deputy_card(deputy, None)
            if grid is not None:
                resident.grid_id = grid.id
                deputy = deputy or cases.lead_deputy(session, grid.id)
                if deputy is not None:
                    return lines(say("grid_bound"), deputy_card(deputy, grid))
                return say("grid_bound_no_deputy", grid=grid.name)
        if event.startswith("subscribe"):
            return say("welcome")
        return None
    if event == "unsubscribe":
        resident.subscribed = False
        channels.close_window(resident)
        return None
    if event == "click":
        return _menu(session, resident, incoming.event_key or "")
    if event in ("subscribe_msg_popup_event", "subscribe_msg_change_event") and incoming.subscriptions:
        results = {template: ("accept" if status == "accept" else "reject")
                   for template, status in incoming.subscriptions}
        record_consents(session, Principal(role="resident", resident=resident), results)
        return None
    return None


def _menu(session: Session, resident: Resident, key: str) -> str | None:
    handler = MENU_HANDLERS.get(key)
    return handler(session, resident) if handler else None


def _menu_find_deputy(session: Session, resident: Resident) -> str:
    if resident.grid_id is None:
        return say("no_grid")
    deputy = cases.lead_deputy(session, resident.grid_id)
    grid = session.get(Grid, resident.grid_id)
    return deputy_card(deputy, grid) if deputy else say("grid_without_deputy", grid=grid.name)


def _menu_rate(session: Session, resident: Resident) -> str:
    case = _awaiting_rating(session, resident)
    if case is None:
        return say("nothing_to_rate")
    return rating_prompt_text(case.number, case.summary)


def _menu_meet_wednesday(session: Session, resident: Resident) -> str:
    """周三见: the weekly reception day at the resident's station."""
    grid = session.get(Grid, resident.grid_id) if resident.grid_id else None
    station = grid.station if grid is not None else None
    if station is None:
        return lines(say("meet_wednesday"), say("meet_wednesday_no_grid"), say("meet_wednesday_next"))
    return lines(say("meet_wednesday"),
                 say("meet_wednesday_station", station=station.name,
                     hours=station.reception_hours or "以公示为准"),
                 say("meet_wednesday_address", address=station.address) if station.address else None,
                 say("meet_wednesday_next"))


MENU_HANDLERS = {
    MENU_FIND_DEPUTY: _menu_find_deputy,
    MENU_MY_CASES: my_cases_text,
    MENU_RATE: _menu_rate,
    MENU_MEET_WEDNESDAY: _menu_meet_wednesday,
}
