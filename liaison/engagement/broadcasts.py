"""Broadcast notices: a deputy (to their own grids) or staff (their jurisdiction) writes to grids; every
resident bound to those grids (Resident.grid_id) receives it.

Channels, in order, per resident (PLATFORM.md):
1. subscription message (`send_subscribe_bizsend`) when the resident accepted the notice template
   (one credit spent through `accounts.spend_consent`, in the claim's transaction);
2. customer-service message while their window is open (`channels.window_remaining`);
3. mass send by openids while they got fewer than 4 mass messages this month (`MassQuota`, counted
   in the claim's transaction; the batch carries a `clientmsgid`, so re-sending it after a crash is
   answered 45065 by WeChat instead of reaching anyone twice);
4. always: the mini-program copy (the recipient row itself, listed by `inbox`).

Content is checked first (`msg_sec_check`): risky → refused, review → held until staff approve.

Sending: recipient rows are inserted at start and split into chunks; one RQ job per chunk on the BULK
queue (job id unique per chunk and resume). A row is claimed atomically (pending → sending, committed)
before anything leaves, so a duplicated or resumed job never reaches a resident twice. A worker killed
mid-send leaves at most its in-flight row in `sending`: `resume` marks such rows `unknown` (they keep
their mini-program copy; WeChat's custom/subscribe APIs have no idempotency key, so they are not resent),
re-sends in-doubt mass batches under their original clientmsgid, and re-enqueues unfinished chunks.
Sends are paced per channel (`RateLimiter`, shared through Redis by all workers). Each send is one
attempt of the shared delivery engine (`messaging.sending`), which says what WeChat's answer means: a
send that delivered nothing (busy, rate limited, no access token) gives its row back to `pending` with
its credit or window slot and is retried in a later round of the same chunk (`RETRY_ROUNDS`); a refusal
leaves the mini-program copy; a send that may have been delivered is `unknown`, never resent.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, event, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from liaison import runtime
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.errors import CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Refusal
from liaison.core.workcalendar import CHINA_TZ
from liaison.engagement.models import Broadcast, BroadcastRecipient, MassBatch, MassQuota
from liaison.messaging import channels, sending
from liaison.people import service as accounts
from liaison.people.models import DeputyGrid, Grid, NotificationConsent, Resident
from liaison.people.service import DEPUTY, STAFF, Principal
from liaison.wechat.client import thing_value
from liaison.wechat.privacy import mask

log = logging.getLogger(__name__)

SEND_LEASE = timedelta(seconds=120)
MAX_TEXT = 600
VISIBLE_STATUSES = ("sent", "miniprogram", "unknown")  # the resident's mini-program copy exists
OPEN_STATUSES = ("pending", "sending", "mass_retry")
RETRY_ROUNDS = 3  # a send that delivered nothing (busy, rate limited, no token) is retried this often
class BroadcastError(Refusal):
    """A broadcast refused: `kind`, `code`, Chinese message."""


@dataclass(frozen=True)
class BroadcastConfig:
    """Tunables (environment variables, see README): rates are per minute, below WeChat's limits."""

    template_id: str = "broadcast_notice"
    chunk_size: int = 500
    rate_subscribe: float = 3000.0
    rate_custom: float = 3000.0
    rate_mass: float = 50.0  # mass API requests; WeChat allows 60/min
    mass_monthly_limit: int = 4
    mass_batch_max: int = 10000

    @classmethod
    def from_env(cls) -> "BroadcastConfig":
        env = os.environ
        return cls(template_id=env.get("BROADCAST_TEMPLATE_ID", cls.template_id),
                   chunk_size=int(env.get("BROADCAST_CHUNK_SIZE", cls.chunk_size)),
                   rate_subscribe=float(env.get("BROADCAST_RATE_SUBSCRIBE_PER_MIN", cls.rate_subscribe)),
                   rate_custom=float(env.get("BROADCAST_RATE_CUSTOM_PER_MIN", cls.rate_custom)),
                   rate_mass=float(env.get("BROADCAST_RATE_MASS_PER_MIN", cls.rate_mass)),
                   mass_monthly_limit=int(env.get("MASS_MONTHLY_LIMIT", cls.mass_monthly_limit)))

    def rate(self, channel: str) -> float:
        return {"subscribe": self.rate_subscribe, "custom": self.rate_custom, "mass": self.rate_mass}[channel]


def month_of(moment: datetime) -> str:
    """The quota month (China time) of a moment: 2026-03."""
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m")


# ---------------------------------------------------------------------------------------------- pacing
class RateLimiter:
    """Per-channel pacing shared by every worker: fixed windows counted in Redis (in-process without).

    A window is one second with rate/60 sends, or, for rates under one a second, 60/rate seconds with
    one send; so no minute ever sees more than the configured rate.
    """

    def __init__(self, config: BroadcastConfig, redis=None, sleep: Callable[[float], None] = time.sleep):
        self.config, self.redis, self.sleep = config, redis, sleep
        self._local: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def _window(self, channel: str) -> tuple[float, int]:
        per_second = self.config.rate(channel) / 60.0
        if per_second >= 1:
            return 1.0, int(per_second)
        return 1.0 / per_second, 1

    def acquire(self, channel: str) -> None:
        """Block until one send on `channel` fits in the current window."""
        length, budget = self._window(channel)
        while True:
            now = time.time()
            index = int(now / length)
            if self._take(channel, index, length) <= budget:
                return
            self.sleep(max(0.001, (index + 1) * length - time.time()))

    def _take(self, channel: str, index: int, length: float) -> int:
        if self.redis is not None:
            key = f"broadcast:rate:{channel}:{index}"
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, int(length) + 2)
            return int(pipe.execute()[0])
        with self._lock:
            self._local = {k: v for k, v in self._local.items() if k[1] >= index - 1}
            self._local[(channel, index)] = self._local.get((channel, index), 0) + 1
            return self._local[(channel, index)]


# ---------------------------------------------------------------------------------------------- writing
def _allowed_grid_ids(session: Session, principal: Principal) -> list[int] | None:
    """The grids the author may write to (None: the whole county)."""
    if principal.role == DEPUTY:
        return list(session.scalars(select(DeputyGrid.grid_id).where(
            DeputyGrid.deputy_id == principal.account.deputy_id)))
    if principal.role == STAFF:
        return accounts.staff_grid_ids(session, principal.account)
    raise BroadcastError(FORBIDDEN, "role_forbidden", "当前身份无权发布通知")


def _signature(principal: Principal) -> str:
    account = principal.account
    if principal.role == DEPUTY and account.deputy is not None:
        return f"{account.deputy.name}代表"
    if account.station is not None:
        return f"{account.station.name}"
    return "县人大常委会代表工委"


def submit(session: Session, principal: Principal, title: str, text: str, grid_codes: list[str] | None,
           content_check: Callable[[str, str], str], enqueue: Callable[[str, str, Any], None]) -> Broadcast:
    """Write a notice to grids (none given: all the author's grids) and start sending it.

    `content_check(openid, text)` is msg_sec_check's suggestion: risky → refused (BroadcastError 422),
    review → the broadcast is `held` until staff approve it, pass → sending starts after commit.
    """
    title, text = title.strip(), text.strip()
    if not title or not text:
        raise BroadcastError(INVALID, "validation_error", "标题和内容不能为空")
    if len(text) > MAX_TEXT:
        raise BroadcastError(INVALID, "validation_error", f"内容过长（最多 {MAX_TEXT} 字）")
    allowed = _allowed_grid_ids(session, principal)
    if grid_codes:
        rows = session.execute(select(Grid.id, Grid.code).where(Grid.code.in_(grid_codes))).all()
        unknown = sorted(set(grid_codes) - {code for _i, code in rows})
        if unknown:
            raise BroadcastError(INVALID, "unknown_grid", "网格不存在：" + "、".join(unknown))
        grid_ids = sorted({grid_id for grid_id, _c in rows})
        if allowed is not None and not set(grid_ids) <= set(allowed):
            raise BroadcastError(FORBIDDEN, "forbidden", "只能向本人联系的网格或辖区内的网格发布通知")
    else:
        grid_ids = sorted(allowed) if allowed is not None else list(session.scalars(select(Grid.id)))
    if not grid_ids:
        raise BroadcastError(INVALID, "no_grids", "没有可发布的网格")
    suggestion = content_check(principal.account.mp_openid or principal.account.public_id,
                               f"{title}\n{text}")
    if suggestion == "risky":
        raise BroadcastError(INVALID, "content_refused", "内容未通过安全检查，不能发布")
    broadcast = Broadcast(author_account_id=principal.account.id, author_kind=principal.role,
                          title=title, text=text, signature=_signature(principal), grid_ids=grid_ids,
                          content_check=suggestion, status="held" if suggestion == "review" else "new")
    session.add(broadcast)
    session.flush()
    if broadcast.status == "new":
        start(session, broadcast, enqueue)
    return broadcast


def visible(session: Session, principal: Principal, broadcast: Broadcast) -> bool:
    """Authors see their own; staff see those whose grids lie in their jurisdiction."""
    if principal.role == DEPUTY:
        return broadcast.author_account_id == principal.account.id
    if principal.role == STAFF:
        allowed = accounts.staff_grid_ids(session, principal.account)
        return allowed is None or set(broadcast.grid_ids or []) <= set(allowed)
    return False


def get(session: Session, principal: Principal, public_id: str) -> Broadcast:
    """The broadcast if the caller may see it (else 404: existence is not leaked)."""
    broadcast = session.scalar(select(Broadcast).where(Broadcast.public_id == public_id))
    if broadcast is None or not visible(session, principal, broadcast):
        raise BroadcastError(NOT_FOUND, "not_found", "通知不存在")
    return broadcast


def list_for(session: Session, principal: Principal, limit: int = 500) -> list[Broadcast]:
    """The caller's broadcasts, newest first."""
    query = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if principal.role == DEPUTY:
        query = query.where(Broadcast.author_account_id == principal.account.id)
    return [b for b in session.scalars(query) if visible(session, principal, b)]


def approve(session: Session, principal: Principal, broadcast: Broadcast,
            enqueue: Callable[[str, str, Any], None]) -> Broadcast:
    """Staff release a held broadcast (content check said "review")."""
    if principal.role != STAFF:
        raise BroadcastError(FORBIDDEN, "forbidden", "只有工委可以审核通知")
    if broadcast.status != "held":
        raise BroadcastError(CONFLICT, "illegal_state", "该通知不在待审核状态")
    broadcast.approved_by = principal.account.id
    start(session, broadcast, enqueue)
    return broadcast


def cancel(session: Session, principal: Principal, broadcast: Broadcast) -> Broadcast:
    """Stop a held or sending broadcast: recipients not yet claimed are never reached."""
    if principal.role == DEPUTY and broadcast.author_account_id != principal.account.id:
        raise BroadcastError(FORBIDDEN, "forbidden", "只能撤回本人发布的通知")
    if broadcast.status not in ("held", "sending", "new"):
        raise BroadcastError(CONFLICT, "illegal_state", "该通知已结束，不能撤回")
    session.execute(update(Broadcast).where(Broadcast.id == broadcast.id)
                    .values(status="cancelled", cancelled_at=utcnow()))
    session.execute(update(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast.id,
                                                     BroadcastRecipient.status == "pending")
                    .values(status="cancelled"))
    session.flush()
    session.refresh(broadcast)
    return broadcast


# ---------------------------------------------------------------------------------------------- starting
def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the caller's transaction commits (jobs must not see uncommitted rows)."""
    event.listen(session, "after_commit", lambda _s: action(), once=True)


def start(session: Session, broadcast: Broadcast, enqueue: Callable[[str, str, Any], None],
          config: BroadcastConfig | None = None) -> None:
    """Insert one recipient row per bound resident (in SQL, split into chunks) and enqueue the chunks
    after commit. `enqueue(job_id, broadcast_id, chunk)` puts one chunk job on the BULK queue."""
    config = config or BroadcastConfig.from_env()
    size = max(1, config.chunk_size)
    number = func.row_number().over(order_by=Resident.id)
    source = select(literal(broadcast.id), Resident.id, (number - 1) // size, literal("pending")
                    ).where(Resident.grid_id.in_(broadcast.grid_ids))
    session.execute(insert(BroadcastRecipient).from_select(
        ["broadcast_id", "resident_id", "chunk", "status"], source))
    total = session.scalar(select(func.count()).select_from(BroadcastRecipient)
                           .where(BroadcastRecipient.broadcast_id == broadcast.id)) or 0
    now = utcnow()
    broadcast.total, broadcast.chunks = total, math.ceil(total / size)
    broadcast.status, broadcast.started_at, broadcast.month = "sending", now, month_of(now)
    if total == 0:
        broadcast.status, broadcast.finished_at = "done", now
    session.flush()
    chunks = broadcast.chunks
    broadcast_id = broadcast.id
    after_commit(session, lambda: [enqueue(f"broadcast-{broadcast_id}-{chunk}-r0", broadcast_id, chunk)
                                   for chunk in range(chunks)])


def resume(session: Session, broadcast_id: int, enqueue: Callable[[str, str, Any], None], *,
           now: datetime | None = None) -> int:
    """Pick a broadcast up again after workers died or jobs were lost; returns chunks re-enqueued.

    Rows left `sending` past their lease: mass rows go back to `mass_retry` (re-sent under the same
    clientmsgid, which WeChat de-duplicates); others become `unknown` (maybe delivered: never resent).
    Every chunk with open rows is enqueued again under a new job id. Safe to run while jobs still run:
    claims keep each resident to one send.
    """
    now = now or utcnow()
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None or broadcast.status != "sending":
        return 0
    stale = and_(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == "sending",
                 BroadcastRecipient.lease_until < now)
    session.execute(update(BroadcastRecipient).where(stale, BroadcastRecipient.channel == "mass")
                    .values(status="mass_retry"))
    session.execute(update(BroadcastRecipient).where(stale, BroadcastRecipient.channel != "mass")
                    .values(status="unknown", error="worker stopped during the send; not resent"))
    chunks = list(session.scalars(select(BroadcastRecipient.chunk).distinct().where(
        BroadcastRecipient.broadcast_id == broadcast_id,
        BroadcastRecipient.status.in_(("pending", "mass_retry")))))
    broadcast.resumes += 1
    round_ = broadcast.resumes
    session.flush()
    if not chunks:
        finish_if_complete(session, broadcast_id)
        return 0
    after_commit(session, lambda: [enqueue(f"broadcast-{broadcast_id}-{chunk}-r{round_}", broadcast_id, chunk)
                                   for chunk in chunks])
    return len(chunks)


def resume_all(session: Session, enqueue: Callable[[str, str, Any], None], *,
               now: datetime | None = None) -> int:
    """Resume every sending broadcast (for a periodic sweep)."""
    ids = list(session.scalars(select(Broadcast.id).where(Broadcast.status == "sending")))
    return sum(resume(session, i, enqueue, now=now) for i in ids)


def finish_if_complete(session: Session, broadcast_id: int) -> bool:
    """Mark the broadcast done when no recipient is left open."""
    open_rows = exists().where(BroadcastRecipient.broadcast_id == broadcast_id,
                               BroadcastRecipient.status.in_(OPEN_STATUSES))
    result = session.execute(update(Broadcast).where(Broadcast.id == broadcast_id,
                                                     Broadcast.status == "sending", ~open_rows)
                             .values(status="done", finished_at=utcnow()))
    return bool(result.rowcount)


# ---------------------------------------------------------------------------------------------- sending
@dataclass
class _Target:
    row_id: int
    resident_id: int
    openid: str | None
    subscribed: bool
    window_open: bool
    credits: int
    mass_count: int
    window: Resident | None = None  # a detached copy of the window bookkeeping


def _window(resident_id, last_message, last_event, kind, opened_at, used) -> Resident:
    return Resident(id=resident_id, last_message_at=last_message, last_event_at=last_event, window_kind=kind,
                    window_opened_at=opened_at, window_used=used or 0)


def _render_text(broadcast: Broadcast) -> str:
    return f"【{broadcast.title}】\n{broadcast.text}\n—— {broadcast.signature}"


class ChunkSender:
    """Sends one chunk of one broadcast (what the BULK job runs)."""

    PAGE = 200

    def __init__(self, broadcast_id: int, chunk: int, client, limiter: RateLimiter,
                 config: BroadcastConfig):
        self.broadcast_id, self.chunk, self.client = broadcast_id, chunk, client
        self.limiter, self.config = limiter, config
        self.stats: dict[str, int] = {}
        self._outcomes: list[tuple[list[int], dict[str, Any]]] = []
        self._released: list[int] = []  # rows given back after a send that delivered nothing
        self._last_round = False

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def run(self) -> dict[str, int]:
        with db.session_scope() as session:
            broadcast = session.get(Broadcast, self.broadcast_id)
            if broadcast is None or broadcast.status != "sending":
                return {"skipped": 1}
            session.expunge(broadcast)
        self.broadcast = broadcast
        self.text = _render_text(broadcast)
        self._retry_mass_batches()
        mass_candidates: list[_Target] = []
        last_id = 0
        while True:
            self._flush_outcomes()
            if not self._still_sending():
                return {**self.stats, "cancelled": 1}
            targets = self._next_page(last_id)
            if not targets:
                break
            last_id = targets[-1].row_id
            only_miniprogram: list[int] = []
            for target in targets:
                channel = self._plan(target)
                if channel == "mass":
                    mass_candidates.append(target)
                elif channel == "miniprogram":
                    only_miniprogram.append(target.row_id)
                else:
                    self._send_one(target, channel)
            self._mark_miniprogram(only_miniprogram)
        self._retry_released()
        self._flush_outcomes()
        self._send_mass(mass_candidates)
        with db.session_scope() as session:
            finish_if_complete(session, self.broadcast_id)
        return self.stats

    def _still_sending(self) -> bool:
        with db.session_scope() as session:
            return session.scalar(select(Broadcast.status).where(Broadcast.id == self.broadcast_id)) == "sending"

    def _next_page(self, after_id: int) -> list[_Target]:
        return self._targets(BroadcastRecipient.id > after_id)

    def _targets(self, condition) -> list[_Target]:
        """This chunk's pending rows matching `condition`, with what planning needs, by id."""
        month = self.broadcast.month
        with db.session_scope() as session:
            rows = session.execute(
                select(BroadcastRecipient.id, Resident.id, Resident.oa_openid, Resident.subscribed,
                       Resident.last_message_at, Resident.last_event_at, Resident.window_kind,
                       Resident.window_opened_at, Resident.window_used,
                       func.coalesce(NotificationConsent.credits, 0), func.coalesce(MassQuota.count, 0))
                .join(Resident, Resident.id == BroadcastRecipient.resident_id)
                .outerjoin(NotificationConsent, and_(NotificationConsent.resident_id == Resident.id,
                                                     NotificationConsent.template_id == self.config.template_id))
                .outerjoin(MassQuota, and_(MassQuota.resident_id == Resident.id, MassQuota.month == month))
                .where(BroadcastRecipient.broadcast_id == self.broadcast_id,
                       BroadcastRecipient.chunk == self.chunk, BroadcastRecipient.status == "pending",
                       condition)
                .order_by(BroadcastRecipient.id).limit(self.PAGE)).all()
        now = utcnow()
        targets = []
        for (row_id, resident_id, openid, subscribed, last_message, last_event, window_kind, window_opened_at,
             window_used, credits, mass_count) in rows:
            window = _window(resident_id, last_message, last_event, window_kind, window_opened_at, window_used)
            targets.append(_Target(row_id, resident_id, openid, bool(subscribed),
                                   channels.window_remaining(window, now) > 0, credits, mass_count, window))
        return targets

    def _plan(self, target: _Target) -> str:
        if not target.openid or not target.subscribed:
            return "miniprogram"
        if target.credits > 0:
            return "subscribe"
        if target.window_open:
            return "custom"
        if target.mass_count < self.config.mass_monthly_limit:
            return "mass"
        return "miniprogram"

    # ------------------------------------------------------------------ claims
    def _claim(self, session: Session, row_id: int, channel: str, batch_key: str | None = None) -> bool:
        result = session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.id == row_id, BroadcastRecipient.status == "pending")
            .values(status="sending", channel=channel, batch_key=batch_key,
                    lease_until=utcnow() + SEND_LEASE))
        return bool(result.rowcount)

    def _finish(self, row_ids: list[int], status: str, channel: str | None = None,
                errcode: int | None = None, error: str | None = None, *, deferred: bool = False) -> None:
        """Record the outcome of claimed rows. `deferred`: written in the next claim's transaction
        (one commit per message instead of two; a crash in between leaves the row `unknown`, never
        resent)."""
        if not row_ids:
            return
        values: dict[str, Any] = {"status": status, "lease_until": None}
        if channel is not None:
            values["channel"] = channel
        if status == "sent":
            values["sent_at"] = utcnow()
        if errcode is not None or error is not None:
            values.update(errcode=errcode, error=(error or "")[:200])
        self._outcomes.append((list(row_ids), values))
        self._count(f"{status}:{channel or '-'}", len(row_ids))
        if not deferred:
            self._flush_outcomes()

    def _flush_outcomes(self, session: Session | None = None) -> None:
        if not self._outcomes:
            return
        if session is None:
            with db.session_scope() as own:
                return self._flush_outcomes(own)
        for row_ids, values in self._outcomes:
            session.execute(update(BroadcastRecipient).where(BroadcastRecipient.id.in_(row_ids))
                            .values(**values))
        self._outcomes.clear()

    def _mark_miniprogram(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        with db.session_scope() as session:
            result = session.execute(
                update(BroadcastRecipient)
                .where(BroadcastRecipient.id.in_(row_ids), BroadcastRecipient.status == "pending")
                .values(status="miniprogram", channel="miniprogram"))
        self._count("miniprogram", result.rowcount or 0)

    # ------------------------------------------------------------------ one resident
    def _send_one(self, target: _Target, channel: str) -> None:
        self.limiter.acquire(channel)
        claimed = False
        with db.session_scope() as session:
            self._flush_outcomes(session)
            session.commit()  # outcomes are kept even when this claim is given back
            if channel == "subscribe":
                usable = accounts.spend_consent(session, template_id=self.config.template_id,
                                                resident_id=target.resident_id)
            else:  # one of the window's few customer-service sends (shared with case replies)
                usable = channels.take_window_slot(session, target.window, utcnow())
            if usable:
                claimed = self._claim(session, target.row_id, channel)
            if not claimed:
                session.rollback()  # gives the credit or the window slot back
        if not claimed:
            if not usable:  # used up meanwhile: the next channel that needs no batch
                if channel == "subscribe":
                    target.credits = 0
                else:
                    target.window_open = False
                if self._plan(target) == "custom":
                    self._send_one(target, "custom")
                else:
                    self._mark_miniprogram([target.row_id])
            return
        # The claim is committed: from here on this row is ours alone.
        if channel == "subscribe":
            outcome = sending.attempt(lambda: self.client.send_subscribe_bizsend(
                target.openid, self.config.template_id, {
                    "thing1": thing_value(self.broadcast.title),
                    "thing2": thing_value(self.broadcast.text),
                    "thing3": thing_value(self.broadcast.signature)},
                page=f"pages/notices/detail?id={self.broadcast.public_id}"))
        else:
            outcome = sending.attempt(lambda: self.client.send_custom_text(target.openid, self.text))
        if outcome.kind == sending.SENT:
            self._finish([target.row_id], "sent", channel, deferred=True)
        elif outcome.kind == sending.UNKNOWN:
            self._finish([target.row_id], "unknown", error=outcome.message)
        elif outcome.kind in sending.LATER:  # nothing delivered: the credit or window slot goes back
            self._release(target, channel, outcome)
        else:  # refused: the mini-program copy remains
            log.info("broadcast %s to %s via %s refused: %s", self.broadcast_id, mask(target.openid),
                     channel, outcome.kind)
            self._finish([target.row_id], "miniprogram", errcode=outcome.errcode, error=outcome.message)

    def _release(self, target: _Target, channel: str, outcome: sending.Outcome) -> None:
        """Nothing was delivered (WeChat busy, rate limited, no access token): the row goes back to
        `pending` for the next retry round (after the last one: the mini-program copy only), and its
        credit or window slot is given back."""
        status = "miniprogram" if self._last_round else "pending"
        with db.session_scope() as session:
            self._flush_outcomes(session)
            session.execute(update(BroadcastRecipient).where(
                BroadcastRecipient.id == target.row_id, BroadcastRecipient.status == "sending")
                .values(status=status, channel="miniprogram" if self._last_round else None,
                        lease_until=None, errcode=outcome.errcode, error=(outcome.message or "")[:200]))
            if channel == "subscribe":
                session.execute(update(NotificationConsent).where(
                    NotificationConsent.resident_id == target.resident_id,
                    NotificationConsent.template_id == self.config.template_id)
                    .values(credits=NotificationConsent.credits + 1))
            else:
                channels.return_window_slot(session, target.window)
        if self._last_round:
            self._count("miniprogram:-")
        else:
            self._released.append(target.row_id)
            self._count(f"released:{outcome.kind}")

    def _retry_released(self) -> None:
        """Send the rows given back once more, a few rounds at most (each paced by the rate limiter,
        the rest of the chunk serving as backoff); after the last round they keep the mini-program
        copy only."""
        for round_ in range(1, RETRY_ROUNDS + 1):
            if not self._released:
                return
            ids, self._released = self._released, []
            self._last_round = round_ == RETRY_ROUNDS
            self._flush_outcomes()
            for target in self._targets(BroadcastRecipient.id.in_(ids)):
                channel = self._plan(target)
                if channel in ("subscribe", "custom"):
                    self._send_one(target, channel)
                else:
                    self._mark_miniprogram([target.row_id])
        self._last_round = False

    # ------------------------------------------------------------------ mass
    def _send_mass(self, candidates: list[_Target]) -> None:
        """Claim the chunk's mass candidates with their monthly quota, then send by openid list."""
        if len(candidates) < 2:  # WeChat's openid mass send needs at least two openids
            self._mark_miniprogram([t.row_id for t in candidates])
            return
        batch_key = f"bc{self.broadcast_id}-{candidates[0].row_id}"
        claimed: list[_Target] = []
        with db.session_scope() as session:
            for target in candidates:
                savepoint = session.begin_nested()
                if (self._take_quota(session, target.resident_id)
                        and self._claim(session, target.row_id, "mass", batch_key)):
                    savepoint.commit()
                    claimed.append(target)
                else:
                    savepoint.rollback()  # gives the quota back
        claimed_ids = {t.row_id for t in claimed}
        lonely = [t.row_id for t in candidates if t.row_id not in claimed_ids]
        self._mark_miniprogram(lonely)
        if len(claimed) == 1:
            self._release_mass(claimed, "miniprogram")
            return
        if claimed:
            self._deliver_mass(batch_key, [t.row_id for t in claimed], [t.openid for t in claimed])

    def _take_quota(self, session: Session, resident_id: int) -> bool:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        statement = upsert(MassQuota).values(resident_id=resident_id, month=self.broadcast.month, count=1)
        statement = statement.on_conflict_do_update(
            index_elements=["resident_id", "month"], set_={"count": MassQuota.count + 1},
            where=MassQuota.count < self.config.mass_monthly_limit)
        return bool(session.execute(statement).rowcount)

    def _release_mass(self, targets: list[_Target], status: str) -> None:
        """Give back the quota of mass rows that were not sent after all."""
        with db.session_scope() as session:
            for target in targets:
                session.execute(update(MassQuota).where(MassQuota.resident_id == target.resident_id,
                                                        MassQuota.month == self.broadcast.month)
                                .values(count=MassQuota.count - 1))
            session.execute(update(BroadcastRecipient).where(
                BroadcastRecipient.id.in_([t.row_id for t in targets]))
                .values(status=status, channel="miniprogram", lease_until=None, batch_key=None))
        self._count(status, len(targets))

    def _deliver_mass(self, batch_key: str, row_ids: list[int], openids: list[str]) -> None:
        for start_at in range(0, len(openids), self.config.mass_batch_max):
            ids = row_ids[start_at:start_at + self.config.mass_batch_max]
            part = openids[start_at:start_at + self.config.mass_batch_max]
            key = batch_key if start_at == 0 else f"{batch_key}-{start_at}"
            self._mass_call(key, ids, part)

    def _mass_call(self, key: str, row_ids: list[int], openids: list[str]) -> None:
        """One mass batch; repeated (paced by the limiter) while WeChat answers nothing final: the
        clientmsgid makes WeChat drop a duplicate (45065), so even a maybe-delivered batch is resent."""
        for attempt in range(RETRY_ROUNDS + 1):
            self.limiter.acquire("mass")
            outcome = sending.attempt(lambda: self.client.mass_send_by_openids(openids, self.text,
                                                                              clientmsgid=key))
            if outcome.kind == sending.SENT:
                self._record_mass_batch(key, len(openids), (outcome.result or {}).get("msg_id"))
                self._finish(row_ids, "sent", "mass")
                return
            if outcome.kind in sending.LATER | {sending.UNKNOWN} and attempt < RETRY_ROUNDS:
                continue
            break
        if outcome.kind == sending.UNKNOWN:  # maybe accepted: the quota stays spent, never resent again
            self._finish(row_ids, "unknown", "mass", error=outcome.message)
            return
        log.warning("broadcast %s mass batch %s refused: %s", self.broadcast_id, key, outcome.message)
        with db.session_scope() as session:
            for resident_id in session.scalars(select(BroadcastRecipient.resident_id).where(
                    BroadcastRecipient.id.in_(row_ids))):
                session.execute(update(MassQuota).where(MassQuota.resident_id == resident_id,
                                                        MassQuota.month == self.broadcast.month)
                                .values(count=MassQuota.count - 1))
        self._finish(row_ids, "miniprogram", "miniprogram", errcode=outcome.errcode, error=outcome.message)

    def _record_mass_batch(self, key: str, recipients: int, msg_id: int | None) -> None:
        """Remember the job WeChat accepted, so that its completion report can be matched to it."""
        with db.session_scope() as session:
            batch = session.scalar(select(MassBatch).where(MassBatch.batch_key == key))
            if batch is None:
                session.add(MassBatch(broadcast_id=self.broadcast_id, batch_key=key, recipients=recipients,
                                      msg_id=msg_id, status="submitted"))
            elif batch.msg_id is None and msg_id is not None:
                batch.msg_id = msg_id

    def _retry_mass_batches(self) -> None:
        """Batches a dead worker left in doubt: send again under the same clientmsgid."""
        with db.session_scope() as session:
            rows = session.execute(
                select(BroadcastRecipient.batch_key, BroadcastRecipient.id, Resident.oa_openid)
                .join(Resident, Resident.id == BroadcastRecipient.resident_id)
                .where(BroadcastRecipient.broadcast_id == self.broadcast_id,
                       BroadcastRecipient.chunk == self.chunk, BroadcastRecipient.status == "mass_retry")
                .order_by(BroadcastRecipient.batch_key, BroadcastRecipient.id)).all()
            if rows:
                session.execute(update(BroadcastRecipient).where(
                    BroadcastRecipient.id.in_([r[1] for r in rows]), BroadcastRecipient.status == "mass_retry")
                    .values(status="sending", lease_until=utcnow() + SEND_LEASE))
        batches: dict[str, list[tuple[int, str]]] = {}
        for key, row_id, openid in rows:
            batches.setdefault(key, []).append((row_id, openid))
        for key, members in batches.items():
            self._deliver_mass(key, [m[0] for m in members], [m[1] for m in members])


def send_chunk(broadcast_id: int, chunk: int, client=None, redis=None,
               config: BroadcastConfig | None = None) -> dict[str, int]:
    """Send one chunk (idempotent: only pending rows are claimed and sent). Without `client`, the
    process's runtime gives the client and Redis (None: pacing within this process only)."""
    config = config or BroadcastConfig.from_env()
    if client is None:  # a worker: this process's configured client and Redis
        rt = runtime.current()
        client, redis = rt.wechat_here(), rt.redis  # the job runs in the broadcast's county
    sender = ChunkSender(broadcast_id, chunk, client, RateLimiter(config, redis), config)
    return sender.run()


# ---------------------------------------------------------------------------------------------- reading
def progress(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    """Counts per status and per channel, and the fraction of recipients settled."""
    by_status: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    for status, channel, count in session.execute(
            select(BroadcastRecipient.status, BroadcastRecipient.channel, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast.id)
            .group_by(BroadcastRecipient.status, BroadcastRecipient.channel)):
        by_status[status] = by_status.get(status, 0) + count
        if status in VISIBLE_STATUSES:
            by_channel[channel or "miniprogram"] = by_channel.get(channel or "miniprogram", 0) + count
    settled = sum(v for k, v in by_status.items() if k not in OPEN_STATUSES)
    return {"total": broadcast.total, "settled": settled, "by_status": by_status, "by_channel": by_channel,
            "fraction": round(settled / broadcast.total, 4) if broadcast.total else 1.0,
            "mass": mass_report(session, broadcast.id)}


def mass_report(session: Session, broadcast_id: int) -> dict[str, int]:
    """WeChat's own count of what the broadcast's mass sends reached (from MASSSENDJOBFINISH).

    `reported` of `batches` have reported so far; `filtered` followers WeChat did not deliver to.
    """
    batches = session.scalars(select(MassBatch).where(MassBatch.broadcast_id == broadcast_id)).all()
    finished = [b for b in batches if b.status == "finished"]
    return {"batches": len(batches), "reported": len(finished),
            "submitted": sum(b.recipients for b in batches),
            "sent": sum(b.sent_count or 0 for b in finished),
            "filtered": sum(b.filter_count or 0 for b in finished),
            "errors": sum(b.error_count or 0 for b in finished)}


def record_mass_report(session: Session, msg_id: int, *, status: str | None, total: int | None,
                       filtered: int | None, sent: int | None, errors: int | None) -> MassBatch | None:
    """Store WeChat's completion report of one mass job; None when the job is not one of ours.

    A repeated report (WeChat retries the event) overwrites the same numbers: harmless.
    """
    batch = session.scalar(select(MassBatch).where(MassBatch.msg_id == msg_id))
    if batch is None:
        return None
    batch.status, batch.wechat_status = "finished", (status or "")[:64]
    batch.total_count, batch.filter_count, batch.sent_count, batch.error_count = total, filtered, sent, errors
    batch.finished_at = utcnow()
    if status and status != "send success":
        log.warning("broadcast %s mass job %s finished with status %r", batch.broadcast_id, msg_id, status)
    return batch


def recipients(session: Session, broadcast: Broadcast, *, status: str | None = None, page: int = 1,
               page_size: int = 20) -> tuple[list[tuple[BroadcastRecipient, str]], int]:
    """One page of per-recipient delivery status (with the resident's public id)."""
    conditions = [BroadcastRecipient.broadcast_id == broadcast.id]
    if status:
        conditions.append(BroadcastRecipient.status == status)
    total = session.scalar(select(func.count()).select_from(BroadcastRecipient).where(*conditions)) or 0
    rows = session.execute(select(BroadcastRecipient, Resident.public_id)
                           .join(Resident, Resident.id == BroadcastRecipient.resident_id)
                           .where(*conditions).order_by(BroadcastRecipient.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return [(r, p) for r, p in rows], total


def inbox(session: Session, resident: Resident, *, page: int = 1,
          page_size: int = 20) -> tuple[list[tuple[BroadcastRecipient, Broadcast]], int]:
    """The resident's notices in the mini-program, newest first."""
    conditions = [BroadcastRecipient.resident_id == resident.id,
                  BroadcastRecipient.status.in_(VISIBLE_STATUSES)]
    total = session.scalar(select(func.count()).select_from(BroadcastRecipient).where(*conditions)) or 0
    rows = session.execute(select(BroadcastRecipient, Broadcast)
                           .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
                           .where(*conditions).order_by(BroadcastRecipient.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return [(r, b) for r, b in rows], total
