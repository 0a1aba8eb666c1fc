"""The WhatsApp channel on a real Sanic app, real Redis, and a fake Graph API over real HTTP.

Webhooks are built and signed as Meta sends them (tests.fakes.whatsapp_graph); replies are
checked at the fake Graph API, which validates them against the Messages API's shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

import aiohttp
import pytest

from bot.broker import RedisStreamEventBroker
from connectors.identity import IdentityResolver
from analytics.customers import CUSTOMER_ID, Identity
from analytics.schema import REPLY_UNDELIVERED, LogEvent
from connectors.errors import ConnectorConfigError
from connectors.limits import Rate, RateLimits
from connectors.messages import EMPTY_TEXT, SLOW_DOWN_TEXT, TEXT_ONLY
from connectors.whatsapp import WhatsAppInput, interactive_message
from tests.connectors.support import Recorder, channel_app, read_stream, replaced, serving, wrong_shapes
from tests.fakes import whatsapp_graph as wa
from tests.fakes.whatsapp_graph import FakeGraph

ADA = "4915123456789"
BOB = "14155550123"


@dataclass
class Setup:
    base: str
    graph: FakeGraph
    channel: WhatsAppInput
    resolver: IdentityResolver
    broker: RedisStreamEventBroker
    http: aiohttp.ClientSession

    @property
    def webhook(self) -> str:
        return f"{self.base}/webhooks/whatsapp/webhook"

    async def post(self, payload: Any, *, raw: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> tuple:
        """POST as Meta does (signed) unless raw bytes / headers are given."""
        if raw is None:
            raw, signed_headers = wa.signed(payload)
            headers = signed_headers if headers is None else headers
        async with self.http.post(self.webhook, data=raw, headers=headers or {}) as answer:
            return answer.status, await answer.json(content_type=None)

    async def settled(self) -> None:
        """Every webhook handled and every record written."""
        await self.channel.drain(timeout=10)
        await self.broker.flush()


@contextlib.asynccontextmanager
async def whatsapp(recorder: Any, redis_url: str, tmp_path: Path, **options: Any) -> AsyncIterator[Setup]:
    async with channel_app(redis_url, tmp_path) as (app, broker, resolver):
        async with FakeGraph() as graph:
            settings: Dict[str, Any] = dict(
                access_token=wa.ACCESS_TOKEN,
                app_secret=wa.APP_SECRET,
                verify_token=wa.VERIFY_TOKEN,
                phone_number_id=wa.PHONE_NUMBER_ID,
                api_base_url=graph.base_url,
                attempts=3,
                timeout=5.0,
                backoff=0.01,
            )
            settings.update(options)
            channel = WhatsAppInput(resolver=resolver, **settings)
            app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/whatsapp")
            async with serving(app) as base, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                yield Setup(base, graph, channel, resolver, broker, http)


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def records(redis_url: str, kind: str) -> List[LogEvent]:
    return [event for event in read_stream(redis_url) if event.type == kind]


class Buttons(Recorder):
    def __init__(self, buttons: List[Dict[str, Any]]) -> None:
        super().__init__()
        self.buttons = buttons

    async def __call__(self, message: Any) -> None:
        self.calls.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": "What would you like to know?", "buttons": self.buttons})


# --- verification -------------------------------------------------------------------------------


async def test_meta_verification_challenge(redis_url: str, tmp_path: Path) -> None:
    async with whatsapp(Recorder(), redis_url, tmp_path) as s:
        good = {"hub.mode": "subscribe", "hub.verify_token": wa.VERIFY_TOKEN, "hub.challenge": "1158201444"}
        async with s.http.get(s.webhook, params=good) as answer:
            assert answer.status == 200 and answer.content_type == "text/plain"
            assert await answer.text() == "1158201444"
        async with s.http.get(s.webhook, params={**good, "hub.verify_token": "guess"}) as answer:
            assert answer.status == 403
        for missing in ("hub.mode", "hub.verify_token", "hub.challenge"):
            params = {k: v for k, v in good.items() if k != missing}
            async with s.http.get(s.webhook, params=params) as answer:
                assert answer.status == 400, missing
        async with s.http.get(f"{s.base}/webhooks/whatsapp/") as answer:
            assert await answer.json() == {"status": "ok"}


# --- messages in and out ------------------------------------------------------------------------


async def test_a_signed_text_reaches_rasa_and_the_reply_reaches_whatsapp(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Hello Ada!",))
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        assert await s.post(wa.text_message(ADA, "hi there", name="Ada")) == (200, {"status": "received"})
        (reply,) = await s.graph.wait_for(1)
        (message,) = recorder.calls
        assert CUSTOMER_ID.match(message.sender_id) and message.input_channel == "whatsapp"
        assert message.text == "hi there"
        assert message.metadata == {"whatsapp": {"wa_id": ADA, "profile_name": "Ada"}}
        assert message.message_id.startswith("wamid.")
        assert reply == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": ADA,
            "type": "text",
            "text": {"preview_url": False, "body": "Hello Ada!"},
        }
        assert await s.resolver.directory.owner(Identity.of("whatsapp", ADA)) == message.sender_id


async def test_the_same_number_keeps_its_customer(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        for sender, text in ((ADA, "one"), (BOB, "hello"), (ADA, "two")):
            await s.post(wa.text_message(sender, text))
        await s.graph.wait_for(3)
        await s.settled()
    by_text = {m.text: m for m in recorder.calls}  # senders are handled side by side: any order
    assert by_text["one"].sender_id == by_text["two"].sender_id != by_text["hello"].sender_id
    assert sorted(m["to"] for m in s.graph.sent) == sorted([ADA, BOB, ADA])


async def test_one_senders_messages_reach_rasa_in_order_one_at_a_time(redis_url: str, tmp_path: Path) -> None:
    class Slow(Recorder):
        """Echoes each message after a while; the first one is the slowest."""

        def __init__(self) -> None:
            super().__init__()
            self.busy: Dict[str, int] = {}
            self.most_at_once: Dict[str, int] = {}

        async def __call__(self, message: Any) -> None:
            self.calls.append(message)
            self.busy[message.sender_id] = self.busy.get(message.sender_id, 0) + 1
            self.most_at_once[message.sender_id] = max(self.most_at_once.get(message.sender_id, 0), self.busy[message.sender_id])
            await asyncio.sleep(0.15 if message.text.endswith(" 0") else 0.02)
            await message.output_channel.send_text_message(message.sender_id, f"echo {message.text}")
            self.busy[message.sender_id] -= 1

    recorder = Slow()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        texts = [f"message {i}" for i in range(5)]
        for text in texts:
            assert (await s.post(wa.text_message(ADA, text)))[0] == 200  # acknowledged before it is handled
        await s.post(wa.text_message(BOB, "meanwhile"))
        await s.graph.wait_for(6)
    assert [m.text for m in recorder.calls if m.metadata["whatsapp"]["wa_id"] == ADA] == texts
    assert [m["text"]["body"] for m in s.graph.sent if m["to"] == ADA] == [f"echo {t}" for t in texts]
    assert s.graph.sent[0]["to"] == BOB  # another sender does not wait for Ada's queue
    assert set(recorder.most_at_once.values()) == {1}


async def test_interactive_replies_send_their_payload(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        await s.post(wa.button_reply(ADA, "/ask_pricing", "Pricing"))
        await s.post(wa.list_reply(ADA, "/ask_integrations", "Integrations"))
        await s.graph.wait_for(2)
    assert [m.text for m in recorder.calls] == ["/ask_pricing", "/ask_integrations"]


async def test_up_to_three_buttons_go_out_as_reply_buttons(redis_url: str, tmp_path: Path) -> None:
    buttons = [
        {"title": "Pricing", "payload": "/ask_pricing"},
        {"title": "Talk to a person about my account", "payload": "/handoff"},
    ]
    async with whatsapp(Buttons(buttons), redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, "menu"))
        (sent,) = await s.graph.wait_for(1)
    assert sent["type"] == "interactive" and sent["to"] == ADA
    assert sent["interactive"] == {
        "type": "button",
        "body": {"text": "What would you like to know?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "/ask_pricing", "title": "Pricing"}},
                {"type": "reply", "reply": {"id": "/handoff", "title": "Talk to a person ab…"}},
            ]
        },
    }


async def test_four_to_ten_buttons_go_out_as_a_list_and_more_as_numbered_text(redis_url: str, tmp_path: Path) -> None:
    five = [{"title": f"Topic number {i} with a long name", "payload": f"/topic_{i}"} for i in range(5)]
    async with whatsapp(Buttons(five), redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, "menu"))
        (sent,) = await s.graph.wait_for(1)
    assert sent["interactive"]["type"] == "list"
    rows = sent["interactive"]["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == [f"/topic_{i}" for i in range(5)]
    assert rows[0]["title"] == "Topic number 0 with a l…" and rows[0]["description"] == "Topic number 0 with a long name"

    twelve = [{"title": f"Option {i}", "payload": f"/o{i}"} for i in range(1, 13)]
    assert interactive_message("Pick", twelve) is None
    async with whatsapp(Buttons(twelve), redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, "menu"))
        (sent,) = await s.graph.wait_for(1)
    assert sent["type"] == "text" and sent["text"]["body"].splitlines()[:3] == ["What would you like to know?", "1. Option 1", "2. Option 2"]


async def test_long_replies_are_split_and_images_go_by_link(redis_url: str, tmp_path: Path) -> None:
    class Long(Recorder):
        async def __call__(self, message: Any) -> None:
            self.calls.append(message)
            await message.output_channel.send_response(message.sender_id, {"text": ("word " * 1000).strip()})
            await message.output_channel.send_response(message.sender_id, {"image": "https://quillstack.example/plans.png"})

    async with whatsapp(Long(), redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, "tell me everything"))
        sent = await s.graph.wait_for(3)
    assert [m["type"] for m in sent] == ["text", "text", "image"]
    assert all(len(m["text"]["body"]) <= 4096 for m in sent[:2])
    assert " ".join(m["text"]["body"] for m in sent[:2]) == ("word " * 1000).strip()
    assert sent[2]["image"] == {"link": "https://quillstack.example/plans.png"}


# --- refusals -------------------------------------------------------------------------------------


async def test_unsigned_or_wrongly_signed_webhooks_are_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        body = wa.encode(wa.text_message(ADA, "let me in"))
        assert (await s.post(None, raw=body, headers={"Content-Type": "application/json"}))[0] == 401
        forged = wa.signature(body, app_secret="not-the-secret")
        assert (await s.post(None, raw=body, headers={"X-Hub-Signature-256": forged}))[0] == 403
        tampered = wa.encode(wa.text_message(ADA, "let me in!"))
        assert (await s.post(None, raw=tampered, headers={"X-Hub-Signature-256": wa.signature(body)}))[0] == 403
        await s.settled()
    assert recorder.calls == [] and s.graph.requests == []
    assert read_stream(redis_url) == []


async def test_malformed_and_unexpected_bodies_are_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        for raw in (b'{"object": "whatsapp_business_account", "entry": [', b"\xff\xfe", b'["entry"]', b'{"object": "page", "entry": []}'):
            status, _ = await s.post(None, raw=raw, headers={"X-Hub-Signature-256": wa.signature(raw)})
            assert status == 400, raw
        await s.settled()
    assert recorder.calls == [] and read_stream(redis_url) == []


async def test_no_signed_body_of_any_shape_gets_a_500(redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Meta retries a 500 for days: each wrong shape is acknowledged with a logged refusal, or refused with 400.
    message = wa.text_message(ADA, "hi")
    bodies = [wa.encode(replaced(message, path, value)) for path, value in wrong_shapes(message)]
    bodies += [b"[" * 1000, b'{"a":' * 1000, b"[" * 30_000 + b"]" * 30_000]
    bodies.append(b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[],"contacts":1}}]}]}')
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        statuses = []
        for body in bodies:
            status, _ = await s.post(None, raw=body, headers={"X-Hub-Signature-256": wa.signature(body)})
            statuses.append(status)
        await s.settled()
        assert set(statuses) <= {200, 400}, [(status, body[:120]) for status, body in zip(statuses, bodies) if status not in (200, 400)]
        assert statuses[-4:] == [400, 400, 400, 200]
        calls = len(recorder.calls)
        assert (await s.post(wa.text_message(BOB, "still there?")))[0] == 200
        await eventually(lambda: any(m["to"] == BOB for m in s.graph.sent), what="the reply to Bob")
        await s.settled()
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "connectors.requests"]
    assert failed == [], failed[0].getMessage()  # no background job crashed either
    assert recorder.calls[-1].text == "still there?" and len(recorder.calls) == calls + 1


async def test_a_message_without_a_string_id_is_refused_not_handled_each_time(redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        for message_id in (12345, 12345, 12345, 12345, 12345, None, ["a"], ""):
            payload = wa.text_message(ADA, "numbered")
            payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = message_id
            assert (await s.post(payload))[0] == 200
        for _ in range(5):
            assert (await s.post(wa.text_message(ADA, "string id", message_id="12345")))[0] == 200
        await s.graph.wait_for(1)
        await s.settled()
    assert [m.text for m in recorder.calls] == ["string id"]
    assert sum("without a usable id" in r.getMessage() for r in caplog.records) == 8


async def test_lone_surrogates_reach_rasa_as_replacement_characters(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, "hi \ud800 there", name="Ada \udfff"))  # Meta's JSON escapes them as \ud800
        await s.post(wa.button_reply(ADA, "/ask_pricing\udc00", "Pricing"))
        await s.graph.wait_for(2)
        await s.settled()
    assert [m.text for m in recorder.calls] == ["hi \ufffd there", "/ask_pricing\ufffd"]
    assert recorder.calls[0].metadata["whatsapp"]["profile_name"] == "Ada \ufffd"


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_an_empty_message_gets_an_answer_and_a_record(redis_url: str, tmp_path: Path, text: str) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        await s.post(wa.text_message(ADA, text))
        (reply,) = await s.graph.wait_for(1)
        await s.settled()
    assert recorder.calls == []
    assert reply["to"] == ADA and reply["text"]["body"] == EMPTY_TEXT
    (record,) = records(redis_url, "message_refused")
    assert record.data == {"reason": "empty_message"} and record.channel == "whatsapp" and CUSTOMER_ID.match(record.conversation_id)


async def test_a_full_queue_drops_with_a_record_and_one_slow_down_reply(redis_url: str, tmp_path: Path) -> None:
    # Issue 9, item 5: the WhatsApp queue was unbounded.
    recorder = Recorder(delay=0.3)
    limits = RateLimits(sender=None, max_queued_per_sender=3)
    async with whatsapp(recorder, redis_url, tmp_path, rate_limits=limits) as s:
        for i in range(10):
            assert (await s.post(wa.text_message(ADA, f"message {i}")))[0] == 200
        await s.settled()
        await eventually(lambda: any(m["text"]["body"] == SLOW_DOWN_TEXT for m in s.graph.sent if m["type"] == "text"), what="the slow-down reply")
    assert [m.text for m in recorder.calls] == [f"message {i}" for i in range(4)]  # one running, three waiting
    dropped = records(redis_url, "message_dropped")
    assert [e.text for e in dropped] == [f"message {i}" for i in range(4, 10)]
    assert {(e.conversation_id, e.data["reason"]) for e in dropped} == {(f"whatsapp:{ADA}", "queue_full")}
    assert all(e.data["message_id"].startswith("wamid.") for e in dropped)
    bodies = [m["text"]["body"] for m in s.graph.sent if m["to"] == ADA]
    assert bodies.count(SLOW_DOWN_TEXT) == 1 and len(bodies) == 5


async def test_a_sender_who_sends_too_fast_is_asked_to_slow_down(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path, rate_limits=RateLimits(sender=Rate(per_minute=6, burst=2))) as s:
        for i in range(5):
            assert (await s.post(wa.text_message(ADA, f"message {i}")))[0] == 200
        await s.post(wa.image_message(ADA))
        await s.post(wa.text_message(BOB, "hello"))
        await s.settled()
        await eventually(lambda: any(m["text"]["body"] == SLOW_DOWN_TEXT for m in s.graph.sent if m["type"] == "text"), what="the slow-down reply")
    handled = [m.text for m in recorder.calls]
    # Each sender in order; two senders' workers run side by side, so Bob may come first.
    assert [t for t in handled if t != "hello"] == ["message 0", "message 1"] and handled.count("hello") == 1
    dropped = records(redis_url, "message_dropped")
    assert [(e.text, e.data["reason"]) for e in dropped] == [(f"message {i}", "sender_rate") for i in (2, 3, 4)] + [("[image]", "sender_rate")]
    assert [m["text"]["body"] for m in s.graph.sent if m["to"] == ADA].count(SLOW_DOWN_TEXT) == 1


async def test_an_oversized_body_is_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path, max_body_bytes=2000) as s:
        status, body = await s.post(wa.text_message(ADA, "z" * 5000))
        assert status == 413 and body["error"] == "body_too_large"
        await s.settled()
    assert recorder.calls == []


async def test_a_redelivered_webhook_is_handled_once(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        payload = wa.text_message(ADA, "only once")
        for _ in range(3):
            assert (await s.post(payload))[0] == 200
        await s.post(wa.text_message(ADA, "next"))
        await s.graph.wait_for(2)
        await s.settled()
    assert [m.text for m in recorder.calls] == ["only once", "next"]
    assert len(s.graph.sent) == 2


@pytest.mark.parametrize(
    "build, kind",
    [(wa.image_message, "image"), (wa.sticker_message, "sticker"), (wa.voice_message, "audio")],
    ids=["image", "sticker", "voice"],
)
async def test_media_gets_a_text_only_reply_and_a_record(redis_url: str, tmp_path: Path, build: Any, kind: str) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        assert (await s.post(build(ADA)))[0] == 200
        (reply,) = await s.graph.wait_for(1)
        await s.settled()
    assert recorder.calls == []
    assert reply["to"] == ADA and reply["text"]["body"] == TEXT_ONLY
    (record,) = records(redis_url, "unsupported_message")
    assert record.channel == "whatsapp" and record.data == {"type": kind} and CUSTOMER_ID.match(record.conversation_id)


async def test_a_too_long_text_is_refused_politely(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path, max_message_chars=100) as s:
        await s.post(wa.text_message(ADA, "y" * 150))
        (reply,) = await s.graph.wait_for(1)
        await s.settled()
    assert recorder.calls == []
    assert "too long for me (150 characters)" in reply["text"]["body"]
    (record,) = records(redis_url, "message_refused")
    assert record.data == {"reason": "message_too_long"} and record.channel == "whatsapp"


async def test_statuses_are_acknowledged_and_ignored(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        for status in ("sent", "delivered", "read"):
            assert await s.post(wa.statuses(ADA, status)) == (200, {"status": "received"})
        await s.settled()
    assert recorder.calls == [] and s.graph.requests == [] and read_stream(redis_url) == []


# --- delivery failures ----------------------------------------------------------------------------


async def test_a_rate_limited_reply_is_retried_and_delivered(redis_url: str, tmp_path: Path) -> None:
    async with whatsapp(Recorder(replies=("Hello!",)), redis_url, tmp_path) as s:
        s.graph.fail_next(1, 429)
        await s.post(wa.text_message(ADA, "hi"))
        (reply,) = await s.graph.wait_for(1)
    assert reply["text"]["body"] == "Hello!"
    assert [status for status, _ in s.graph.requests] == [429, 200]


async def test_a_reply_that_cannot_be_delivered_is_logged_and_the_channel_carries_on(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with whatsapp(recorder, redis_url, tmp_path) as s:
        s.graph.fail_next(3, 500)  # every attempt
        await s.post(wa.text_message(ADA, "hi"))
        await s.settled()
        assert s.graph.sent == [] and [status for status, _ in s.graph.requests] == [500, 500, 500]
        await s.post(wa.text_message(ADA, "still there?"))
        await s.graph.wait_for(1)
        await s.settled()
    assert [m.text for m in recorder.calls] == ["hi", "still there?"]
    assert any("was not delivered" in record.getMessage() for record in caplog.records)
    (missed,) = [e for e in read_stream(redis_url) if e.type == REPLY_UNDELIVERED]  # staff see who missed a reply
    assert missed.conversation_id == recorder.calls[0].sender_id and missed.channel == "whatsapp"
    assert missed.data["message_type"] == "text" and "500" in missed.data["error"]


async def test_a_wrong_access_token_is_not_retried(redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with whatsapp(Recorder(), redis_url, tmp_path, access_token="expired") as s:
        await s.post(wa.text_message(ADA, "hi"))
        await s.settled()
    ((status, _),) = s.graph.requests
    assert status == 401
    assert any("OAuthException" in record.getMessage() for record in caplog.records)


# --- configuration --------------------------------------------------------------------------------


def test_from_credentials_names_every_missing_key() -> None:
    with pytest.raises(ConnectorConfigError) as missing:
        WhatsAppInput.from_credentials({"access_token": "", "api_version": "v21.0"})
    text = str(missing.value)
    for key, env in (
        ("access_token", "WHATSAPP_ACCESS_TOKEN"),
        ("app_secret", "WHATSAPP_APP_SECRET"),
        ("verify_token", "WHATSAPP_VERIFY_TOKEN"),
        ("phone_number_id", "WHATSAPP_PHONE_NUMBER_ID"),
    ):
        assert f"{key} (set {env})" in text
    assert "connectors.whatsapp.WhatsAppInput" in text
    with pytest.raises(ConnectorConfigError, match="unknown option"):
        WhatsAppInput.from_credentials({"token": "x"})

    secrets = {"access_token": "t", "app_secret": "s", "verify_token": "v", "phone_number_id": 106540352242922}
    channel = WhatsAppInput.from_credentials(secrets)
    assert channel.phone_number_id == "106540352242922"  # YAML reads an unquoted id as a number
    assert channel.messages_path == "v21.0/106540352242922/messages"
    assert channel.client.base_url == "https://graph.facebook.com"
    assert (channel.max_message_chars, channel.max_body_bytes) == (4096, 256 * 1024)
    assert channel.client.headers == {"Authorization": "Bearer t"}
    tuned = WhatsAppInput.from_credentials({**secrets, "api_version": "v22.0", "timeout": 3, "attempts": 2})
    assert tuned.messages_path.startswith("v22.0/") and tuned.client.policy.attempts == 2 and tuned.client.policy.timeout == 3.0
    with pytest.raises(ConnectorConfigError, match="must be positive"):
        WhatsAppInput.from_credentials({**secrets, "max_body_bytes": 0})
