"""Notifying requesters: route by the channel last written on, WhatsApp templates outside the window
(against the fake Graph API), each job sent at most once, failures recorded with the reason."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import redis.asyncio

from analytics.customers import CustomerDirectory, Identity
from analytics.ideas.notify import (
    OUTBOX, PENDING, ChannelDelivery, NoDelivery, NotificationSender, Notification, Outcome, Route, TemplateSettings,
    WhatsAppTemplates, choose_route, message_text, queue_notifications, whatsapp_number,
)
from analytics.schema import EVENTS_STREAM, IDEA_NOTIFIED, IDEA_NOTIFY_FAILED, LogEvent
from connectors.outbound import ProviderClient, RetryPolicy
from tests.fakes.whatsapp_graph import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraph

NOW = 1_780_000_000.0
DAY = 86400.0


def record(**channels: tuple) -> Dict[str, Any]:
    return {"customer_id": "C-x", "channels": {name: {"last_seen": seen, "messages": messages} for name, (seen, messages) in channels.items()}}


def test_the_route_is_the_channel_last_written_on_and_whatsapp_knows_its_window() -> None:
    assert choose_route(record(telegram=(NOW - 5, 3), whatsapp=(NOW - 60, 2)), NOW) == Route("telegram", NOW - 5, True)
    assert choose_route(record(whatsapp=(NOW - 2 * DAY, 2), socketio=(NOW - 3 * DAY, 9)), NOW) == Route("whatsapp", NOW - 2 * DAY, False)
    assert choose_route(record(whatsapp=(NOW - 3600, 1)), NOW).window_open
    assert choose_route(record(portal=(NOW, 0)), NOW) is None  # never wrote there
    assert choose_route(None, NOW) is None


def test_the_message_quotes_their_idea_and_gives_the_reason_when_declined() -> None:
    job = {"status": "shipped", "text": "add dark mode", "reference": "IDEA-7", "note": "Settings > Appearance."}
    assert message_text(job) == "Good news: you asked us for \u201cadd dark mode\u201d (IDEA-7), and it is now live. Settings > Appearance. Thank you for the idea!"
    declined = message_text({**job, "status": "declined", "note": "it would slow the editor down"})
    assert "not to build it" in declined and "Why: it would slow the editor down" in declined


async def queue(client: redis.asyncio.Redis, customers: List[str], status: str = "shipped") -> None:
    async with client.pipeline(transaction=True) as pipe:
        await queue_notifications(pipe, {"id": "TH-1"}, {"status": status, "at": NOW - 10, "note": ""},
                                  [{"customer": c, "text": "add dark mode\nplease", "reference": "IDEA-1"} for c in customers])
        await pipe.execute()


class Recording:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.sent: List[Notification] = []

    async def send(self, notification: Notification) -> Outcome:
        self.sent.append(notification)
        return self.outcome


async def logged(client: redis.asyncio.Redis) -> List[LogEvent]:
    return [LogEvent.from_fields(fields) for _, fields in await client.xrange(EVENTS_STREAM)]


async def test_whatsapp_outside_the_window_gets_a_template_and_inside_goes_the_ordinary_way(client: redis.asyncio.Redis) -> None:
    directory = CustomerDirectory(client)
    old = (await directory.resolve([(Identity.of("whatsapp", "4915112345678"), "whatsapp")])).customer_id
    recent = (await directory.resolve([(Identity.of("whatsapp", "4915187654321"), "whatsapp")])).customer_id
    records = {old: record(whatsapp=(NOW - 3 * DAY, 4)), recent: record(whatsapp=(NOW - 600, 1))}

    async def record_of(customer: str) -> Optional[Dict[str, Any]]:
        return records.get(customer)

    await queue(client, [old, recent])
    async with FakeGraph() as graph:
        graph.close_window("4915112345678")
        http = ProviderClient(graph.base_url, headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}, policy=RetryPolicy(attempts=2, backoff=0.01))
        templates = WhatsAppTemplates(http, PHONE_NUMBER_ID, lambda customer: whatsapp_number(directory, customer), TemplateSettings("idea_update", "en"))
        inside = Recording(Outcome("sent"))
        sender = NotificationSender(client, ChannelDelivery(inside, templates), record_of)
        assert await sender.send_due(NOW) == 2
        assert await sender.send_due(NOW + 3600) == 0  # nothing is sent twice
        await http.close()
    (payload,) = graph.sent
    assert payload["to"] == "4915112345678" and payload["type"] == "template"
    assert payload["template"]["name"] == "idea_update" and payload["template"]["language"]["code"] == "en"
    (parameter,) = payload["template"]["components"][0]["parameters"]
    assert parameter["text"].startswith("Good news: you asked us for \u201cadd dark mode please\u201d")  # no new line in a parameter
    assert [n.customer for n in inside.sent] == [recent]
    jobs = {json.loads(raw)["customer"]: json.loads(raw) for raw in (await client.hgetall(OUTBOX)).values()}
    assert jobs[old]["state"] == "sent" and jobs[old]["detail"]["template"] == "idea_update" and jobs[old]["attempts"] == 1
    assert await client.zcard(PENDING) == 0
    assert sorted((e.type, e.conversation_id, e.data["channel"]) for e in await logged(client)) == sorted(
        [(IDEA_NOTIFIED, old, "whatsapp"), (IDEA_NOTIFIED, recent, "whatsapp")])


async def test_a_refused_notification_is_recorded_with_the_reason_and_not_retried(client: redis.asyncio.Redis) -> None:
    directory = CustomerDirectory(client)
    customer = (await directory.resolve([(Identity.of("whatsapp", "4915112345678"), "whatsapp")])).customer_id
    nobody = "C-00000000000000ff"

    async def record_of(who: str) -> Optional[Dict[str, Any]]:
        return record(whatsapp=(NOW - 3 * DAY, 4)) if who == customer else None

    await queue(client, [customer, nobody])
    async with FakeGraph(access_token="another-token") as graph:  # our token is refused: 401
        http = ProviderClient(graph.base_url, headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}, policy=RetryPolicy(attempts=2, backoff=0.01))
        templates = WhatsAppTemplates(http, PHONE_NUMBER_ID, lambda who: whatsapp_number(directory, who))
        sender = NotificationSender(client, ChannelDelivery(NoDelivery(), templates), record_of)
        assert await sender.send_due(NOW) == 2
        assert await sender.send_due(NOW + DAY) == 0
        await http.close()
    assert graph.sent == [] and len(graph.requests) == 1
    jobs = {json.loads(raw)["customer"]: json.loads(raw) for raw in (await client.hgetall(OUTBOX)).values()}
    assert jobs[customer]["state"] == "failed" and "WhatsApp refused the template message" in jobs[customer]["reason"] and "401" in jobs[customer]["reason"]
    assert jobs[nobody]["state"] == "failed" and jobs[nobody]["reason"] == "the customer has no channel they wrote on"
    assert {e.type for e in await logged(client)} == {IDEA_NOTIFY_FAILED}


async def test_without_a_delivery_for_the_channel_the_job_waits_with_the_reason(client: redis.asyncio.Redis) -> None:
    async def record_of(who: str) -> Optional[Dict[str, Any]]:
        return record(telegram=(NOW - 5, 2))

    await queue(client, ["C-00000000000000a1"])
    sender = NotificationSender(client, ChannelDelivery(NoDelivery()), record_of)
    assert await sender.send_due(NOW) == 1
    (job,) = [json.loads(raw) for raw in (await client.hgetall(OUTBOX)).values()]
    assert job["state"] == "pending" and "no delivery to telegram yet" in job["reason"]
    assert await sender.send_due(NOW + 1) == 0  # looked at again later, not in a loop
    assert await sender.send_due(NOW + 301) == 1
    assert await logged(client) == []


async def test_two_senders_never_send_the_same_job(client: redis.asyncio.Redis) -> None:
    import asyncio

    async def record_of(who: str) -> Optional[Dict[str, Any]]:
        return record(telegram=(NOW - 5, 2))

    await queue(client, [f"C-{n:016x}" for n in range(20)])
    one, two = Recording(Outcome("sent")), Recording(Outcome("sent"))
    await asyncio.gather(NotificationSender(client, one, record_of).send_due(NOW), NotificationSender(client, two, record_of).send_due(NOW))
    sent = [n.job_id for n in one.sent + two.sent]
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 20


async def test_through_rasa_a_delivered_or_queued_message_is_done_and_a_silent_server_is_tried_later() -> None:
    from analytics.ideas.notify import ProactiveDelivery, proactive_id
    from analytics.proactive import Outcome as Answer

    class Rasa:
        def __init__(self, answer: Answer) -> None:
            self.answer, self.calls = answer, []

        async def send(self, conversation_id: str, text: str, **kwargs: Any) -> Answer:
            self.calls.append((conversation_id, text, kwargs))
            return self.answer

    note = Notification("TH-1:shipped:C-1", "C-1", Route("telegram", NOW, True), "it shipped", {})
    rasa = Rasa(Answer("delivered", "telegram", http_status=200))
    assert (await ProactiveDelivery(rasa).send(note)).state == "sent"
    (_, text, kwargs), = rasa.calls
    assert text == "it shipped" and kwargs["message_id"] == proactive_id(note.job_id) == "idea:TH-1:shipped:C-1" and kwargs["channel"] == "telegram"
    assert kwargs["author"].role == "system"
    assert (await ProactiveDelivery(Rasa(Answer("queued", "socketio", http_status=200))).send(note)).state == "queued"
    later = await ProactiveDelivery(Rasa(Answer("failed", reason="The Rasa server did not answer", http_status=0))).send(note)
    assert (later.state, later.reason) == ("pending", "The Rasa server did not answer")
    refused = await ProactiveDelivery(Rasa(Answer("failed", "telegram", reason="Telegram said 403: bot was blocked by the user", http_status=502))).send(note)
    assert (refused.state, refused.reason) == ("failed", "Telegram said 403: bot was blocked by the user")


async def test_staff_send_a_failed_notification_again_but_never_a_sent_one(client: redis.asyncio.Redis) -> None:
    import io
    from types import SimpleNamespace

    from analytics.ideas import cli

    async def record_of(who: str) -> Optional[Dict[str, Any]]:
        return record(telegram=(NOW - 5, 2))

    await queue(client, ["C-00000000000000a1", "C-00000000000000a2"])
    refusing = Recording(Outcome("failed", "Telegram said 403: bot was blocked by the user"))
    await NotificationSender(client, refusing, record_of).send_due(NOW)

    async def outbox(**given: Any) -> tuple:
        out, err = io.StringIO(), io.StringIO()
        args = SimpleNamespace(command="ideas", ideas_command="outbox", json=False, by="pat", **given)
        return await cli.command(client, None, args, out, encoder=object(), err=err), out.getvalue(), err.getvalue()

    code, out, _ = await outbox(retry=None)
    assert code == 0 and out.count("failed") == 2 and "bot was blocked" in out
    code, out, _ = await outbox(retry="TH-1:shipped:C-00000000000000a1")
    assert code == 0 and "will be sent again" in out
    working = Recording(Outcome("sent"))
    assert await NotificationSender(client, working, record_of).send_due() == 1  # re-queued for now (the clock)
    assert [n.customer for n in working.sent] == ["C-00000000000000a1"]
    code, _, err = await outbox(retry="TH-1:shipped:C-00000000000000a1")
    assert code == 2 and "is sent" in err  # never twice
    code, _, err = await outbox(retry="TH-9:shipped:C-1")
    assert code == 2 and "no notification" in err
    (job,) = [json.loads(raw) for raw in (await client.hgetall(OUTBOX)).values() if "a1" in raw and '"sent"' in raw]
    assert [h["state"] for h in job["history"]] == ["failed", "pending", "sent"] and "pat" in job["history"][1]["reason"]


async def test_when_whatsapp_says_the_window_closed_the_template_goes_instead() -> None:
    note = Notification("TH-1:shipped:C-1", "C-1", Route("whatsapp", NOW - 600, True), "it shipped", {})
    refused = Recording(Outcome("failed", "WhatsApp Graph API answered 400: (#131047) Re-engagement message"))
    templates = Recording(Outcome("sent", "", {"template": "idea_update"}))
    outcome = await ChannelDelivery(refused, templates).send(note)
    assert (outcome.state, outcome.detail["template"]) == ("sent", "idea_update") and "131047" in outcome.detail["free_form_refused"]
    assert len(refused.sent) == len(templates.sent) == 1
    other = Recording(Outcome("failed", "WhatsApp Graph API answered 400: (#131026) Message undeliverable"))
    assert (await ChannelDelivery(other, templates).send(note)).reason.endswith("(#131026) Message undeliverable")  # no template for other refusals
    assert len(templates.sent) == 1
    assert "no template sender is configured" in (await ChannelDelivery(refused).send(note)).reason
