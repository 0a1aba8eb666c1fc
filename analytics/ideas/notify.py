"""Telling requesters that what they asked for shipped (or was declined): an outbox in Redis, each sent once.

Marking a needs theme shipped or declined (`theme_status_set`, applied by the themes projection)
queues one job per opted-in requester in the same transaction: `engage:ideas:outbox` (hash job
id -> JSON) and `engage:ideas:outbox:pending` (sorted set, due time). The job id is
theme:status:customer, written with HSETNX, so a status set twice, a redelivered event or a
replay queues nothing new. `NotificationSender` (in the analytics service) claims a pending job
by moving it to `sending` in a WATCHed transaction before anything goes out, so two senders never
both send it, and a sender that dies mid-send leaves it in `sending` for staff to look at rather
than sending it again: at most once. Each outcome is written with an `idea_notified` or
`idea_notify_failed` log event (with the reason) in the same transaction.

Where: the channel the customer last wrote on (their record's channels). WhatsApp outside its
24-hour customer-service window takes only an approved template (`WhatsAppTemplates`); every
other send goes through Rasa's proactive endpoint (analytics.proactive, issue 12), keyed by the
job id, so it is in the customer's conversation and the log too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from redis.exceptions import WatchError

from analytics.schema import EVENTS_STREAM, IDEA_NOTIFIED, IDEA_NOTIFY_FAILED, SOURCE_ANALYTICS, LogEvent

logger = logging.getLogger(__name__)

OUTBOX = "engage:ideas:outbox"
PENDING = OUTBOX + ":pending"
WAITING, SENDING, SENT, QUEUED, FAILED = "pending", "sending", "sent", "queued", "failed"
WHATSAPP = "whatsapp"
# Meta's customer-service window is 24 h from the customer's last message; an hour's margin
# because the record's last_seen also moves with the bot's replies, which follow within seconds.
WHATSAPP_WINDOW = 23 * 3600.0
RETRY_DELAY = 300.0  # a deferred job (no delivery for its channel yet) is looked at again after this
MAX_QUOTE = 200


def job_id(theme: str, status: str, customer: str) -> str:
    return f"{theme}:{status}:{customer}"


async def queue_notifications(pipe: Any, theme: Mapping[str, Any], change: Mapping[str, Any], requesters: Sequence[Mapping[str, Any]]) -> None:
    """Add one job per requester to a MULTI pipeline (idempotent: HSETNX and ZADD NX)."""
    for requester in requesters:
        ident = job_id(theme["id"], change["status"], requester["customer"])
        job = {
            "id": ident, "theme": theme["id"], "status": change["status"], "note": change.get("note") or "", "customer": requester["customer"],
            "text": str(requester.get("text") or "")[:MAX_QUOTE], "reference": requester.get("reference") or "", "queued_at": change["at"],
            "state": WAITING, "attempts": 0, "history": [],
        }
        pipe.hsetnx(OUTBOX, ident, json.dumps(job, sort_keys=True))
        pipe.zadd(PENDING, {ident: float(change["at"])}, nx=True)


def message_text(job: Mapping[str, Any]) -> str:
    """The notification in words: their own idea quoted, what happened and, if given, why."""
    quoted = f"\u201c{job['text']}\u201d" + (f" ({job['reference']})" if job.get("reference") else "")
    note = str(job.get("note") or "").strip()
    if job["status"] == "shipped":
        return f"Good news: you asked us for {quoted}, and it is now live." + (f" {note}" if note else "") + " Thank you for the idea!"
    return (f"An update on your idea {quoted}: we have decided not to build it." + (f" Why: {note}" if note else "")
            + " Thank you for telling us; please keep the ideas coming.")


@dataclass(frozen=True)
class Route:
    channel: str
    last_seen: float
    window_open: bool  # only meaningful on WhatsApp


def choose_route(record: Optional[Mapping[str, Any]], now: float) -> Optional[Route]:
    """The channel the customer last wrote on (a channel they only received on does not count)."""
    if not record:
        return None
    used = [(seen.get("last_seen") or 0.0, name) for name, seen in (record.get("channels") or {}).items() if seen.get("messages")]
    if not used:
        return None
    last_seen, channel = max(used)
    return Route(channel, float(last_seen), channel != WHATSAPP or now - float(last_seen) < WHATSAPP_WINDOW)


@dataclass(frozen=True)
class Notification:
    job_id: str
    customer: str
    route: Route
    text: str
    job: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    state: str  # sent, queued (the channel delivers when the customer next connects), failed, or pending (try later)
    reason: str = ""
    detail: Optional[Mapping[str, Any]] = None


class Delivery(Protocol):
    async def send(self, notification: Notification) -> Outcome: ...


class NoDelivery:
    """Where proactive delivery through Rasa is not configured (no ENGAGE_PROACTIVE_TOKEN): the job
    stays pending with the reason, and is looked at again later."""

    async def send(self, notification: Notification) -> Outcome:
        return Outcome(WAITING, f"no delivery to {notification.route.channel} yet (proactive delivery through Rasa is not configured: ENGAGE_PROACTIVE_TOKEN)")


class ProactiveDelivery:
    """Through the Rasa server's proactive endpoint (analytics.proactive, issue 12): the message
    goes out on the customer's channel and lands in their conversation as the product team's.
    Its message id is the job's, so even a retried send reaches the customer once; a Rasa server
    that does not answer, or has no model yet, leaves the job pending for a later round."""

    AUTHOR = ("system", "ideas", "Quillstack product team")

    def __init__(self, client: Any) -> None:
        self.client = client

    async def send(self, notification: Notification) -> Outcome:
        from analytics.proactive import DELIVERED, Author

        outcome = await self.client.send(notification.customer, notification.text, author=Author(*self.AUTHOR),
                                         message_id=proactive_id(notification.job_id), channel=notification.route.channel)
        if outcome.ok:
            return Outcome(SENT if outcome.status == DELIVERED else QUEUED, "", {"proactive": outcome.status, "channel": outcome.channel, "repeat": outcome.repeat})
        if outcome.http_status in (0, 409, 503):  # not answered, being sent right now, model not loaded: try again later
            return Outcome(WAITING, outcome.reason or f"the Rasa server answered {outcome.http_status}")
        return Outcome(FAILED, outcome.reason or f"the Rasa server answered {outcome.http_status}")


def proactive_id(job: str) -> str:
    """The proactive endpoint's idempotency key for a job (letters, digits, _.:- and at most 128)."""
    return ("idea:" + "".join(ch if ch.isalnum() or ch in "_.:-" else "-" for ch in job))[:128]


@dataclass(frozen=True)
class TemplateSettings:
    name: str = "idea_update"
    language: str = "en"


class WhatsAppTemplates:
    """An approved template through the Cloud API: what may be sent outside the 24-hour window.

    The template (`idea_update`, body "{{1}}") is registered with Meta by the business; its one
    body parameter is the notification text (no new lines: the API refuses them in parameters).
    """

    def __init__(self, client: Any, phone_number_id: str, number_of: Callable[[str], Awaitable[Optional[str]]],
                 settings: TemplateSettings = TemplateSettings(), api_version: str = "v21.0") -> None:
        self.client = client
        self.phone_number_id = phone_number_id
        self.number_of = number_of
        self.settings = settings
        self.api_version = api_version

    @staticmethod
    def payload(number: str, text: str, settings: TemplateSettings) -> Dict[str, Any]:
        flat = " ".join(text.split())[:1024]
        return {
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": number, "type": "template",
            "template": {
                "name": settings.name, "language": {"policy": "deterministic", "code": settings.language},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": flat}]}],
            },
        }

    async def send(self, notification: Notification) -> Outcome:
        from connectors.outbound import OutboundError

        number = await self.number_of(notification.customer)
        if not number:
            return Outcome(FAILED, "no WhatsApp number is linked to the customer")
        try:
            answer = await self.client.post_json(f"{self.api_version}/{self.phone_number_id}/messages", self.payload(number, notification.text, self.settings))
        except OutboundError as exc:
            return Outcome(FAILED, f"WhatsApp refused the template message: {exc}"[:500])
        ids = [m.get("id") for m in (answer or {}).get("messages", []) if isinstance(m, dict)]
        return Outcome(SENT, "", {"template": self.settings.name, "message_ids": ids})


RE_ENGAGEMENT = "131047"  # WhatsApp's error for free-form text outside the customer-service window


class ChannelDelivery:
    """WhatsApp outside the window: the template; anything else: `proactive`. WhatsApp knows the
    window better than our records do: when it refuses the free-form text as a re-engagement
    message (131047), the template goes instead."""

    def __init__(self, proactive: Delivery, whatsapp_templates: Optional[Delivery] = None) -> None:
        self.proactive = proactive
        self.whatsapp_templates = whatsapp_templates

    async def send(self, notification: Notification) -> Outcome:
        if notification.route.channel == WHATSAPP and not notification.route.window_open:
            return await self._template(notification, "outside WhatsApp's 24-hour window")
        outcome = await self.proactive.send(notification)
        if notification.route.channel == WHATSAPP and outcome.state == FAILED and RE_ENGAGEMENT in outcome.reason:
            template = await self._template(notification, "WhatsApp refused free-form text (its 24-hour window had closed)")
            return Outcome(template.state, template.reason, {**(template.detail or {}), "free_form_refused": outcome.reason[:300]})
        return outcome

    async def _template(self, notification: Notification, why: str) -> Outcome:
        if self.whatsapp_templates is None:
            return Outcome(FAILED, f"{why} and no template sender is configured (WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID)")
        return await self.whatsapp_templates.send(notification)


class Outbox:
    """The outbox keys (`engage:ideas:outbox*`): claim, finish, list."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def due(self, now: float, limit: int = 50) -> List[str]:
        return list(await self.client.zrangebyscore(PENDING, "-inf", now, start=0, num=limit))

    async def claim(self, ident: str, now: float) -> Optional[Dict[str, Any]]:
        """The job, moved to `sending` (or None when it is not waiting: sent, failed, being sent)."""
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(OUTBOX)
                    raw = await pipe.hget(OUTBOX, ident)
                    job = json.loads(raw) if raw else None
                    pipe.multi()
                    if job is None or job["state"] != WAITING:
                        pipe.zrem(PENDING, ident)
                        await pipe.execute()
                        return None
                    job.update(state=SENDING, attempts=job["attempts"] + 1, claimed_at=now)
                    pipe.hset(OUTBOX, ident, json.dumps(job, sort_keys=True))
                    await pipe.execute()
                    return job
                except WatchError:
                    continue

    async def finish(self, job: Dict[str, Any], outcome: Outcome, route: Optional[Route], now: float) -> None:
        """Store the outcome; a final one (sent, queued, failed) is logged and leaves the queue."""
        job = dict(job)
        job["history"] = [*job.get("history", []), {"at": now, "state": outcome.state, "reason": outcome.reason, "channel": route.channel if route else None}][-10:]
        job.update(state=outcome.state, reason=outcome.reason, channel=route.channel if route else None, updated_at=now)
        if outcome.detail:
            job["detail"] = dict(outcome.detail)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(OUTBOX, job["id"], json.dumps(job, sort_keys=True))
            if outcome.state == WAITING:
                pipe.zadd(PENDING, {job["id"]: now + RETRY_DELAY})
            else:
                pipe.zrem(PENDING, job["id"])
                kind = IDEA_NOTIFY_FAILED if outcome.state == FAILED else IDEA_NOTIFIED
                data = {"job": job["id"], "theme": job["theme"], "status": job["status"], "channel": job["channel"], "state": outcome.state, "reason": outcome.reason}
                pipe.xadd(EVENTS_STREAM, LogEvent(kind, job["customer"], SOURCE_ANALYTICS, job["channel"] or "", now, data=data).to_fields())
            await pipe.execute()

    async def retry(self, ident: str, by: str, now: float) -> Dict[str, Any]:
        """Staff send a failed job, or one a crash left `sending`, again (ValueError: why not)."""
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(OUTBOX)
                    raw = await pipe.hget(OUTBOX, ident)
                    if raw is None:
                        raise ValueError(f"no notification {ident!r} (see `python -m analytics ideas outbox`)")
                    job = json.loads(raw)
                    if job["state"] not in (FAILED, SENDING):
                        raise ValueError(f"{ident} is {job['state']}: only a failed notification, or one left sending by a crash, is sent again")
                    job["history"] = [*job.get("history", []), {"at": now, "state": WAITING, "reason": f"sent again at the request of {by}", "channel": job.get("channel")}][-10:]
                    job.update(state=WAITING, reason=f"sent again at the request of {by}", updated_at=now)
                    pipe.multi()
                    pipe.hset(OUTBOX, ident, json.dumps(job, sort_keys=True))
                    pipe.zadd(PENDING, {ident: now})
                    await pipe.execute()
                    return job
                except WatchError:
                    continue

    async def jobs(self) -> List[Dict[str, Any]]:
        return sorted((json.loads(raw) for raw in (await self.client.hgetall(OUTBOX)).values()), key=lambda job: (job["queued_at"], job["id"]))


class NotificationSender:
    """The analytics service's loop over the outbox: route, send once, record."""

    def __init__(self, client: Any, delivery: Delivery, record_of: Callable[[str], Awaitable[Optional[Dict[str, Any]]]], interval: float = 1.0) -> None:
        self.outbox = Outbox(client)
        self.delivery = delivery
        self.record_of = record_of
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.send_due()
            except Exception:  # noqa: BLE001 - a bad round must not end the loop; jobs stay in the outbox
                logger.exception("idea notifications: a round failed; it will be tried again")
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def send_due(self, now: Optional[float] = None) -> int:
        """Send every job that is due; returns how many were tried."""
        tried = 0
        for ident in await self.outbox.due(time.time() if now is None else now):
            moment = time.time() if now is None else now
            job = await self.outbox.claim(ident, moment)
            if job is None:
                continue
            tried += 1
            customer = job["customer"]
            record = await self.record_of(customer)
            while record is not None and record.get("merged_into"):
                customer = record["merged_into"]
                record = await self.record_of(customer)
            route = choose_route(record, moment)
            if route is None:
                await self.outbox.finish(job, Outcome(FAILED, "the customer has no channel they wrote on"), None, moment)
                continue
            try:
                outcome = await self.delivery.send(Notification(job["id"], customer, route, message_text(job), job))
            except Exception as exc:  # noqa: BLE001 - recorded with the job; not sent twice
                logger.exception("idea notifications: sending %s failed", job["id"])
                outcome = Outcome(FAILED, f"{type(exc).__name__}: {exc}"[:500])
            await self.outbox.finish(job, outcome, route, moment)
        return tried


def whatsapp_templates_from_env(client_factory: Optional[Callable[..., Any]] = None, number_of: Optional[Callable[[str], Awaitable[Optional[str]]]] = None,
                                settings: TemplateSettings = TemplateSettings()) -> Optional[WhatsAppTemplates]:
    """The template sender when WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are set (else None);
    WHATSAPP_API_BASE_URL points it elsewhere (tests: the fake Graph API)."""
    token, phone = os.environ.get("WHATSAPP_ACCESS_TOKEN"), os.environ.get("WHATSAPP_PHONE_NUMBER_ID")
    if not token or not phone or number_of is None:
        return None
    from connectors.outbound import ProviderClient

    base = os.environ.get("WHATSAPP_API_BASE_URL", "https://graph.facebook.com")
    client = (client_factory or ProviderClient)(base, headers={"Authorization": f"Bearer {token}"}, label="WhatsApp Graph API", secrets=(token,))
    return WhatsAppTemplates(client, phone, number_of, settings, os.environ.get("WHATSAPP_API_VERSION", "v21.0"))


async def whatsapp_number(directory: Any, customer: str) -> Optional[str]:
    """The customer's most recently linked WhatsApp number, from the customer directory."""
    numbers = [str(linked.identity) for linked in await directory.identities(customer) if str(linked.identity).startswith("whatsapp:")]
    return numbers[-1].split(":", 1)[1] if numbers else None


def idea_notifier(client: Any, records: Any) -> NotificationSender:
    """The service's sender: through Rasa's proactive endpoint (ENGAGE_RASA_URL, ENGAGE_PROACTIVE_TOKEN),
    and WhatsApp templates outside the 24-hour window (WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID)."""
    from analytics.customers import CustomerDirectory

    directory = CustomerDirectory(client)
    templates = whatsapp_templates_from_env(number_of=lambda customer: whatsapp_number(directory, customer))
    token = os.environ.get("ENGAGE_PROACTIVE_TOKEN")
    proactive: Delivery = NoDelivery()
    if token:
        from analytics.proactive import ProactiveClient

        proactive = ProactiveDelivery(ProactiveClient(os.environ.get("ENGAGE_RASA_URL") or "http://127.0.0.1:5005", token))
    else:
        logger.warning("idea notifications: ENGAGE_PROACTIVE_TOKEN is not set; notifications wait until it is (make run sets it)")
    return NotificationSender(client, ChannelDelivery(proactive, templates), records.record)


async def requester_data(client: Any, ids: Sequence[str]) -> Dict[str, Any]:
    """What idea mining holds about these customer ids beyond their ideas: their answer about
    hearing back, and the notifications to them (privacy export)."""
    from analytics.ideas.themes import CONSENT

    wanted = set(ids)
    consent = {name: json.loads(raw) for name, raw in zip(sorted(wanted), await client.hmget(CONSENT, sorted(wanted))) if raw} if wanted else {}
    jobs = [job for job in await Outbox(client).jobs() if job["customer"] in wanted]
    return {"idea_updates_consent": consent, "idea_notifications": jobs}


async def forget_requester(client: Any, ids: Sequence[str]) -> int:
    """Remove their consent answer and their notifications (privacy erase); how many entries went."""
    from analytics.ideas.themes import CONSENT

    held = await requester_data(client, ids)
    jobs = [job["id"] for job in held["idea_notifications"]]
    async with client.pipeline(transaction=True) as pipe:
        if ids:
            pipe.hdel(CONSENT, *ids)
        if jobs:
            pipe.hdel(OUTBOX, *jobs)
            pipe.zrem(PENDING, *jobs)
        await pipe.execute()
    return len(held["idea_updates_consent"]) + len(jobs)
