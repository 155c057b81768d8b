"""Delivering outbox messages over a channel WeChat allows (see liaison.channels).

`deliver(outbox_id)` is what a worker runs. It claims the row (so a duplicate or retried job is a
no-op), walks the planned channels best first, sends once, and records every attempt:
- 40001/42001 are handled inside the client (refresh once, retry once);
- 45015/45047 (window closed / quota used) and 43101 (consent gone) fall back to the next channel;
- 45009/45011 back off; −1, HTTP 5xx and connection errors retry with backoff, bounded;
- a read timeout may have delivered the message: the row becomes `unknown`, never resent blindly;
- a send that never left (no access token: Redis down) releases the claim for a normal retry.
What each error means is decided once, in `liaison.messaging.sending` (shared with broadcasts).
A resident with no usable channel keeps the message `waiting` (it is on the case in the
mini-program) until their next message opens a window.
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from liaison import runtime
from liaison.case.lifecycle import STATUS_LABELS
from liaison.case.models import Case
from liaison.core import db
from liaison.core.clock import utcnow
from liaison.core.workcalendar import CHINA_TZ
from liaison.messaging import channels, outbox, sending
from liaison.messaging.channels import CUSTOM, MP_SUBSCRIBE, OA_SUBSCRIBE, TEMPLATE, Plan
from liaison.messaging.models import OutboxMessage
from liaison.messaging.texts import rating_prompt_text, rating_reminder_text
from liaison.people.models import Account, Resident
from liaison.people.service import link_official_account
from liaison.wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)

RESIDENT_KINDS = ("resident_text", "rating_prompt", "rating_reminder")


def render(row: OutboxMessage) -> str:
    """The text a person receives for an outbox row."""
    if row.kind == "rating_prompt":
        return rating_prompt_text(row.payload["case_number"], row.payload.get("summary"),
                                  row.payload.get("photos", 0))
    if row.kind == "rating_reminder":
        return rating_reminder_text(row.payload["case_number"])
    return row.payload["text"]


def deliver(outbox_id: int, client=None, mini_client=None) -> str:
    """Send one outbox message; returns its status after this attempt (or "skipped")."""
    rt = runtime.current() if client is None else None
    with db.session_scope() as session:
        row = outbox.claim(session, outbox_id)
        if row is None:
            return "skipped"
        if rt is not None:  # the official account of the row's county (its own, else the deployment's)
            client, mini_client = rt.wechat_for(row.county_id, session), rt.miniprogram
        if row.kind in RESIDENT_KINDS:
            return _deliver_to_resident(session, row, client, mini_client)
        if row.kind == "fetch_unionid":
            return _fetch_unionid(session, row, client)
        return _deliver_to_account(session, row, mini_client)


def _fetch_unionid(session: Session, row: OutboxMessage, client) -> str:
    """user/info for a new follower; a unionid links them with their mini-program self."""
    resident = session.get(Resident, row.payload["resident_id"])
    if resident is None or not resident.oa_openid:
        outbox.finish_dead(row, "resident gone")
        return row.status
    info: dict = {}
    outcome = _attempt(session, row, Plan("user_info"),
                       lambda: info.update(client.get_user_info(resident.oa_openid)))
    if outcome == "sent":
        link_official_account(session, resident, info.get("unionid"))
    elif outcome not in ("retry", "unknown"):
        outbox.finish_dead(row, row.last_error or "user/info refused")
    return row.status


def _template_values(session: Session, row: OutboxMessage) -> dict[str, str]:
    case = session.get(Case, row.case_id) if row.case_id else None
    title = row.payload.get("title") or (case.text if case else render(row))
    return {"case_number": row.payload.get("case_number", case.number if case else ""),
            "title": title, "text": render(row),
            "status": STATUS_LABELS.get(case.status, "") if case else "",
            "date": utcnow().astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")}


def _deliver_to_resident(session: Session, row: OutboxMessage, client, mini_client) -> str:
    resident = session.get(Resident, row.resident_id) if row.resident_id else None
    if resident is None:
        outbox.finish_dead(row, "no recipient")
        return row.status
    refused = False
    for plan in channels.resident_plans(session, resident):
        if plan.channel == CUSTOM:
            if not channels.take_window_slot(session, resident):
                continue
            session.commit()  # the slot is ours before the (slow) call; never hold the row lock over it
        outcome = _attempt(session, row, plan, lambda p=plan: _send_resident(
            session, row, resident, p, client, mini_client))
        if plan.channel == CUSTOM and outcome in ("retry", "refused", "not_follower"):
            channels.return_window_slot(session, resident)  # WeChat answered: nothing was delivered
        if outcome == "window":
            channels.close_window(resident)
        elif outcome == "unsubscribed":
            channels.drop_consent(session, plan, resident_id=resident.id)
        elif outcome == "not_follower":
            resident.subscribed = False
        elif outcome == "refused":
            refused = True
        else:
            if outcome == "sent":
                channels.spend_credit(session, plan, resident_id=resident.id)
            return row.status
    if refused:
        outbox.finish_dead(row, row.last_error or "refused by WeChat")
    else:
        outbox.finish_waiting(row, row.last_error or "no channel open; waiting in the mini-program")
    return row.status


def _send_resident(session, row, resident: Resident, plan: Plan, client, mini_client) -> None:
    if plan.channel == CUSTOM:
        client.send_custom_text(resident.oa_openid, render(row))
        return
    values = _template_values(session, row)
    data = channels.template_data(plan, values)
    if plan.channel == OA_SUBSCRIBE:
        client.send_subscribe_bizsend(resident.oa_openid, plan.template["template_id"], data,
                                      page=plan.template.get("page"))
    elif plan.channel == MP_SUBSCRIBE:
        if mini_client is None:
            raise WeChatAPIError(48001, "mini-program not configured")
        mini_client.send_mini_subscribe(resident.mp_openid, plan.template["template_id"], data,
                                        page=plan.template.get("page"))
    elif plan.channel == TEMPLATE:
        client.send_template(resident.oa_openid, plan.template["template_id"], data,
                             client_msg_id=f"outbox-{row.id}")
    else:  # pragma: no cover - the planner only returns known channels
        raise ValueError(plan.channel)


def _deliver_to_account(session: Session, row: OutboxMessage, mini_client) -> str:
    """A push to a deputy/handler/staff account; the notice itself is already in the mini-program."""
    account_id = row.payload.get("account_id")
    for plan in channels.account_plans(session, account_id):
        openid = session.get(Account, account_id).mp_openid

        def send(p=plan, openid=openid):
            if mini_client is None:
                raise WeChatAPIError(48001, "mini-program not configured")
            mini_client.send_mini_subscribe(openid, p.template["template_id"],
                                            channels.template_data(p, _template_values(session, row)),
                                            page=p.template.get("page"))

        outcome = _attempt(session, row, plan, send)
        if outcome == "unsubscribed":
            channels.drop_consent(session, plan, account_id=account_id)
            continue
        if outcome == "sent":
            channels.spend_credit(session, plan, account_id=account_id)
        if outcome not in ("refused", "window", "not_follower"):
            return row.status
    outbox.finish_inapp(row)  # shown in the mini-program only
    return row.status


def _attempt(session: Session, row: OutboxMessage, plan: Plan, send) -> str:
    """One send on one channel through the shared engine (`messaging.sending`), recorded on the row.

    Returns "sent"; a reason to try the next channel ("window", "unsubscribed", "not_follower",
    "refused"); or a final outcome for now: "retry" (backoff; also for rate limits and for a send
    that never left) or "unknown" (maybe delivered: never resent blindly)."""
    outcome = sending.attempt(send)
    if outcome.kind == sending.SENT:
        outbox.record_attempt(session, row, plan.channel, True)
        outbox.finish_sent(row, plan.channel)
        return "sent"
    outbox.record_attempt(session, row, plan.channel, False, outcome.errcode, outcome.message)
    row.last_error = outcome.message
    log.info("outbox %s via %s failed: %s", row.id, plan.channel, outcome.kind)
    if outcome.kind == sending.UNKNOWN:
        outbox.finish_unknown(row, outcome.message)
        return "unknown"
    if outcome.kind in sending.LATER:
        outbox.finish_retry(row, outcome.message, delay=outcome.delay)
        return "retry"
    return outcome.kind
