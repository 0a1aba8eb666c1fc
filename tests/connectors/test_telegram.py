"""The Telegram channel on a real Sanic app, real Redis, and a fake Bot API over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import aiohttp
import pytest
import redis

from connectors.identity import IdentityResolver
from analytics.customers import CUSTOMER_ID, Identity
from connectors.errors import ConnectorConfigError
from connectors.limits import Rate, RateLimits
from connectors.messages import EMPTY_TEXT, SLOW_DOWN_TEXT, TEXT_ONLY
from connectors.telegram import EXPIRED_BUTTON_TEXT, SECRET_HEADER, TelegramInput
from tests.connectors.support import Recorder, channel_app, read_stream, replaced, serving, wrong_shapes
from tests.fakes import telegram_api as tg
from tests.fakes.telegram_api import FakeTelegramApi, wait_until

SECRET = "engage-test-webhook-secret_1"
ADA, GRACE = 7001, 7002
LONG_PAYLOAD = '/ask_question{"faq_id":"billing-plans-overview"}' + "x" * 20  # over 64 bytes


@dataclass
class Setup:
    base: str
    fake: FakeTelegramApi
    resolver: IdentityResolver
    http: aiohttp.ClientSession

    async def post(self, update: Any = None, *, raw: Optional[bytes] = None, secret: Optional[str] = SECRET) -> int:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        data = raw if raw is not None else tg.encode(update)
        async with self.http.post(f"{self.base}/webhooks/telegram/webhook", data=data, headers=headers) as reply:
            await reply.read()
            return reply.status


@contextlib.asynccontextmanager
async def telegram(recorder: Any, redis_url: str, tmp_path: Path, **options: Any) -> AsyncIterator[Setup]:
    fake = await FakeTelegramApi().start()
    try:
        async with channel_app(redis_url, tmp_path) as (app, _, resolver):
            channel = TelegramInput(bot_token=fake.token, secret_token=SECRET, api_base_url=fake.base_url, resolver=resolver, **options)
            app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/telegram")
            async with serving(app) as base, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                yield Setup(base, fake, resolver, http)
    finally:  # the server's stop has drained the background work
        await fake.close()


class Buttons(Recorder):
    async def __call__(self, message: Any) -> None:
        self.calls.append(message)
        buttons = [{"title": "Pricing", "payload": "/ask_pricing"}, {"title": "Plans", "payload": LONG_PAYLOAD}]
        await message.output_channel.send_text_with_buttons(message.sender_id, "Pick one", buttons)


async def test_a_text_reaches_rasa_as_the_customer_and_the_reply_goes_to_the_chat(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with telegram(recorder, redis_url, tmp_path) as t:
        assert await t.post(tg.text_update(ADA, "hi there")) == 200
        await wait_until(lambda: t.fake.messages)
        assert t.fake.messages == [{"chat_id": ADA, "text": "Hello!"}]
        (message,) = recorder.calls
        assert CUSTOMER_ID.match(message.sender_id) and message.input_channel == "telegram"
        assert message.text == "hi there"
        assert message.metadata == {"telegram": {"user_id": ADA, "chat_id": ADA, "username": "ada_l"}}
        assert await t.resolver.directory.owner(Identity.of("telegram", str(ADA))) == message.sender_id

        # The same user in a group: the same customer; the reply goes to the group.
        assert await t.post(tg.text_update(ADA, "me again", chat_id=-100200300)) == 200
        await wait_until(lambda: len(t.fake.messages) == 2)
        assert t.fake.messages[1] == {"chat_id": -100200300, "text": "Hello!"}
        assert recorder.calls[1].sender_id == message.sender_id

        assert await t.post(tg.text_update(GRACE, "hello", username=None)) == 200
        await wait_until(lambda: len(recorder.calls) == 3)
        assert recorder.calls[2].sender_id != message.sender_id
        assert recorder.calls[2].metadata["telegram"]["username"] is None

        async with t.http.get(f"{t.base}/webhooks/telegram/") as health:
            assert await health.json() == {"status": "ok"}


async def test_one_users_messages_are_handled_in_order_and_long_replies_are_split(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("ok",), delay=0.03)
    async with telegram(recorder, redis_url, tmp_path) as t:
        for number in range(5):
            assert await t.post(tg.text_update(ADA, f"message {number}")) == 200
        await wait_until(lambda: len(t.fake.messages) == 5)
        assert [m.text for m in recorder.calls] == [f"message {n}" for n in range(5)]
    long_reply = ("word " * 1000).strip()  # 4999 characters
    async with telegram(Recorder(replies=(long_reply,)), redis_url, tmp_path) as t:
        await t.post(tg.text_update(ADA, "tell me everything"))
        await wait_until(lambda: len(t.fake.messages) == 2)
        first, second = t.fake.texts()
        assert len(first) <= 4096 and " ".join([first, second]) == long_reply


async def test_buttons_become_an_inline_keyboard_and_presses_come_back_as_payloads(redis_url: str, tmp_path: Path) -> None:
    recorder = Buttons()
    async with telegram(recorder, redis_url, tmp_path) as t:
        await t.post(tg.text_update(ADA, "menu"))
        (sent,) = await wait_until(lambda: t.fake.messages)
        keyboard = sent["reply_markup"]["inline_keyboard"]
        assert sent["chat_id"] == ADA and sent["text"] == "Pick one"
        assert keyboard[0] == [{"text": "Pricing", "callback_data": "/ask_pricing"}]
        short_key = keyboard[1][0]["callback_data"]
        assert keyboard[1][0]["text"] == "Plans" and re.fullmatch(r"cb:[0-9a-f]{12}", short_key)
        stored = redis.Redis.from_url(redis_url)
        try:
            assert stored.get(f"engage:tg:cb:{short_key[3:]}") == LONG_PAYLOAD.encode()
            assert 0 < stored.ttl(f"engage:tg:cb:{short_key[3:]}") <= 7 * 24 * 3600
        finally:
            stored.close()

        bot_message = t.fake.calls[-1].payload  # the keyboard message the user presses on
        await t.post(tg.callback_update(ADA, short_key, query_id="q-long", message={"message_id": 5, "chat": {"id": ADA, "type": "private"}, "date": 0, "text": bot_message["text"]}))
        await t.post(tg.callback_update(ADA, "/ask_pricing", query_id="q-short"))
        await wait_until(lambda: len(recorder.calls) == 3)
        assert [m.text for m in recorder.calls] == ["menu", LONG_PAYLOAD, "/ask_pricing"]
        assert recorder.calls[1].sender_id == recorder.calls[0].sender_id and recorder.calls[1].input_channel == "telegram"
        assert t.fake.succeeded("answerCallbackQuery") == [{"callback_query_id": "q-long"}, {"callback_query_id": "q-short"}]

        # A key that has expired (or never existed): answered, and the customer is asked to type.
        await t.post(tg.callback_update(ADA, "cb:0123456789ab", query_id="q-old"))
        await wait_until(lambda: EXPIRED_BUTTON_TEXT in t.fake.texts())
        assert len(recorder.calls) == 3
        assert t.fake.succeeded("answerCallbackQuery")[-1] == {"callback_query_id": "q-old"}


@pytest.mark.parametrize("secret, status", [(None, 401), ("not-the-secret", 403), ("", 403)], ids=["missing", "wrong", "empty"])
async def test_a_request_without_the_right_secret_is_refused(redis_url: str, tmp_path: Path, secret: Optional[str], status: int) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        assert await t.post(tg.text_update(ADA, "let me in"), secret=secret) == status
        assert await t.post(raw=b"{not json", secret=secret) == status  # checked before the body
        await asyncio.sleep(0.1)
    assert recorder.calls == [] and t.fake.calls == []
    assert read_stream(redis_url) == []


async def test_malformed_and_oversized_bodies_are_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path, max_body_bytes=2048) as t:
        assert await t.post(raw=b"{not json") == 400
        assert await t.post(raw=b"[1, 2]") == 400
        assert await t.post({"message": {"text": "no update_id"}}) == 400
        assert await t.post(tg.text_update(ADA, "y" * 3000)) == 413
        assert await t.post(tg.text_update(ADA, "fine")) == 200
        await wait_until(lambda: t.fake.messages)
    assert [m.text for m in recorder.calls] == ["fine"]


async def test_deeply_nested_bodies_are_refused_before_parsing(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        for raw in (b"[" * 1000, b'{"update_id": 1, "message": ' + b'{"a":' * 900 + b"1" + b"}" * 901):
            assert await t.post(raw=raw) == 400
        assert await t.post(tg.text_update(ADA, "fine")) == 200
        await wait_until(lambda: t.fake.messages)
    assert [m.text for m in recorder.calls] == ["fine"]


async def test_no_update_of_any_shape_gets_a_500(redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Telegram retries anything but 2xx: a wrong shape is acknowledged (and ignored) or refused with 400.
    updates = [tg.text_update(ADA, "hi"), tg.callback_update(ADA, "/ask_pricing"), tg.photo_update(ADA, caption="look")]
    bodies = [tg.encode(replaced(update, path, value)) for update in updates for path, value in wrong_shapes(update)]
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        statuses = [await t.post(raw=body) for body in bodies]
        assert set(statuses) <= {200, 400}, [(s, b[:100]) for s, b in zip(statuses, bodies) if s not in (200, 400)]
        calls = len(recorder.calls)
        assert await t.post(tg.text_update(GRACE, "still there?")) == 200
        await wait_until(lambda: any(m["chat_id"] == GRACE for m in t.fake.messages))
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "connectors.requests"]
    assert failed == [], failed[0].getMessage()  # no background job crashed either
    assert recorder.calls[-1].text == "still there?" and len(recorder.calls) == calls + 1


async def test_lone_surrogates_reach_rasa_as_replacement_characters(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        assert await t.post(tg.text_update(ADA, "hi \ud800", username="ada\udfff")) == 200  # json.dumps escapes them
        await wait_until(lambda: t.fake.messages)
    (message,) = recorder.calls
    assert message.text == "hi \ufffd" and message.metadata["telegram"]["username"] == "ada\ufffd"


async def test_an_empty_message_gets_an_answer_and_a_record(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        assert await t.post(tg.text_update(ADA, " \n\t ")) == 200
        await wait_until(lambda: t.fake.messages)
        customer = await t.resolver.directory.owner(Identity.of("telegram", str(ADA)))
    assert recorder.calls == [] and t.fake.messages == [{"chat_id": ADA, "text": EMPTY_TEXT}]
    (record,) = [e for e in read_stream(redis_url) if e.type == "message_refused"]
    assert record.data == {"reason": "empty_message"} and record.conversation_id == customer


async def test_a_flood_is_paced_and_nothing_is_dropped_silently(redis_url: str, tmp_path: Path) -> None:
    # Issue 9, item 5: 100 updates at 50/s were all acknowledged and 49 dropped with no reply and no record.
    recorder = Recorder(delay=0.02)
    limits = RateLimits(sender=Rate(per_minute=60, burst=10), max_queued_per_sender=5)
    async with telegram(recorder, redis_url, tmp_path, rate_limits=limits) as t:
        statuses = []
        for i in range(100):
            statuses.append(await t.post(tg.text_update(ADA, f"message {i}", update_id=900_000 + i)))
            await asyncio.sleep(0.02)
        await wait_until(lambda: len(t.fake.messages) == len(recorder.calls) + 1)
        await asyncio.sleep(0.2)
        assert await t.post(tg.text_update(GRACE, "me too")) == 200  # another user is not held back
        await wait_until(lambda: any(m["chat_id"] == GRACE for m in t.fake.messages))
    assert statuses == [200] * 100  # Telegram retries anything else
    handled = [m.text for m in recorder.calls if m.text.startswith("message ")]
    dropped = [e for e in read_stream(redis_url) if e.type == "message_dropped"]
    assert len(handled) + len(dropped) == 100 and 10 <= len(handled) <= 15, len(handled)
    assert sorted(handled + [e.text for e in dropped], key=lambda text: int(text.split()[1])) == [f"message {i}" for i in range(100)]
    assert {(e.channel, e.conversation_id, e.data["reason"]) for e in dropped} == {("telegram", f"telegram:{ADA}", "sender_rate")}
    assert [m["text"] for m in t.fake.messages if m["text"] == SLOW_DOWN_TEXT] == [SLOW_DOWN_TEXT]  # once, not 85 times


async def test_a_button_press_dropped_for_speed_is_still_answered(redis_url: str, tmp_path: Path) -> None:
    # The client shows a spinner on a pressed button until answerCallbackQuery; a press that was
    # dropped (the user pressing faster than the limit) was never answered.
    limits = RateLimits(sender=Rate(per_minute=60, burst=2), max_queued_per_sender=5)
    async with telegram(Recorder(), redis_url, tmp_path, rate_limits=limits) as t:
        for number in range(6):
            assert await t.post(tg.callback_update(ADA, "/ask_pricing", query_id=f"q-{number}", update_id=950_000 + number)) == 200
        answered = await wait_until(lambda: len(t.fake.succeeded("answerCallbackQuery")) == 6 and t.fake.succeeded("answerCallbackQuery"))
    dropped = [e.data["message_id"] for e in read_stream(redis_url) if e.type == "message_dropped"]
    assert dropped and sorted(a["callback_query_id"] for a in answered) == [f"q-{n}" for n in range(6)]
    toasts = {a["callback_query_id"] for a in answered if a.get("text") == SLOW_DOWN_TEXT}
    assert toasts == {f"q-{int(update_id) - 950_000}" for update_id in dropped}


async def test_an_address_that_posts_too_fast_gets_429_with_retry_after(redis_url: str, tmp_path: Path) -> None:
    async with telegram(Recorder(), redis_url, tmp_path, rate_limits=RateLimits(ip=Rate(per_minute=60, burst=2))) as t:
        assert [await t.post(tg.text_update(ADA, "hi"), secret="guess") for _ in range(3)] == [403, 403, 429]
        async with t.http.post(f"{t.base}/webhooks/telegram/webhook", data=b"{}") as answer:
            assert answer.status == 429 and answer.headers["Retry-After"] == "1"


def test_rate_limits_are_read_from_credentials() -> None:
    channel = TelegramInput.from_credentials(
        {"bot_token": "123:abc", "secret_token": SECRET, "rate_limits": {"sender_burst": 3, "max_queued": 10}}
    )
    assert channel.limiter.limits.sender == Rate(60, 3) and channel._work.max_total == 10
    with pytest.raises(ConnectorConfigError, match="max_in_flight_per_sender"):
        TelegramInput.from_credentials({"bot_token": "123:abc", "secret_token": SECRET, "rate_limits": {"max_in_flight_per_sender": 1}})


async def test_a_repeated_update_is_handled_once(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        update = tg.text_update(ADA, "only once")
        for _ in range(3):
            assert await t.post(update) == 200  # Telegram re-sends when it got no answer in time
        await t.post(tg.text_update(ADA, "next"))
        await wait_until(lambda: len(t.fake.messages) == 2)
        await asyncio.sleep(0.1)
    assert [m.text for m in recorder.calls] == ["only once", "next"]
    assert len(t.fake.messages) == 2


@pytest.mark.parametrize("make, kind", [(tg.photo_update, "photo"), (tg.sticker_update, "sticker"), (tg.voice_update, "voice")])
async def test_media_get_a_text_only_reply_and_a_record(redis_url: str, tmp_path: Path, make: Any, kind: str) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path) as t:
        assert await t.post(make(ADA)) == 200
        await wait_until(lambda: t.fake.messages)
        assert t.fake.messages == [{"chat_id": ADA, "text": TEXT_ONLY}]
        customer = await t.resolver.directory.owner(Identity.of("telegram", str(ADA)))
    assert recorder.calls == []
    (record,) = [e for e in read_stream(redis_url) if e.type == "unsupported_message"]
    assert record.data == {"type": kind} and record.channel == "telegram" and record.conversation_id == customer


async def test_edits_and_channel_posts_are_ignored_and_long_texts_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with telegram(recorder, redis_url, tmp_path, max_message_chars=50) as t:
        assert await t.post(tg.edited_message_update(ADA, "hi (edited)")) == 200
        assert await t.post(tg.channel_post_update(-100999, "news")) == 200
        assert await t.post(tg.text_update(ADA, "z" * 80)) == 200
        await wait_until(lambda: t.fake.messages)
        await asyncio.sleep(0.1)
        assert t.fake.texts() == ["Sorry, that message is too long for me (80 characters). "
                                  "Please keep it under 50 characters, or split it into a few shorter messages."]
    assert recorder.calls == []
    refused = [e for e in read_stream(redis_url) if e.type == "message_refused"]
    assert [(e.channel, e.data["reason"]) for e in refused] == [("telegram", "message_too_long")]


async def test_flood_control_and_server_errors_are_retried(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with telegram(recorder, redis_url, tmp_path) as t:
        t.fake.fail_next(1, 429, retry_after=1)  # Retry-After header and parameters.retry_after
        t.fake.fail_next(1, 429, retry_after=1, header=False)  # parameters.retry_after only
        t.fake.fail_next(1, 500)
        started = asyncio.get_running_loop().time()
        await t.post(tg.text_update(ADA, "hi"))
        await wait_until(lambda: t.fake.messages, timeout=10)
        elapsed = asyncio.get_running_loop().time() - started
    assert [c.status for c in t.fake.calls] == [429, 429, 500, 200]
    assert t.fake.messages == [{"chat_id": ADA, "text": "Hello!"}]
    assert elapsed >= 2.0  # both 429s were waited out as Telegram asked


async def test_a_reply_that_cannot_be_sent_is_logged_and_the_server_carries_on(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with telegram(recorder, redis_url, tmp_path, attempts=2) as t:
        t.fake.fail_next(2, 500)
        with caplog.at_level(logging.ERROR, logger="connectors.telegram"):
            await t.post(tg.text_update(ADA, "first"))
            await wait_until(lambda: any("not delivered" in r.getMessage() for r in caplog.records), timeout=10)
        assert all(t.fake.token not in r.getMessage() for r in caplog.records)  # the URL holds the token
        await t.post(tg.text_update(ADA, "second"))
        await wait_until(lambda: t.fake.messages)
    assert [m.text for m in recorder.calls] == ["first", "second"]
    assert t.fake.messages == [{"chat_id": ADA, "text": "Hello!"}]
    (missed,) = [e for e in read_stream(redis_url) if e.type == "reply_undelivered"]  # staff see who missed a reply
    assert missed.conversation_id == recorder.calls[0].sender_id and missed.channel == "telegram"
    assert "500" in missed.data["error"] and t.fake.token not in missed.data["error"]


async def test_a_wrong_bot_token_is_a_logged_failure_not_a_crash(redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with telegram(recorder, redis_url, tmp_path) as t:
        t.fake.token = "999:another-bot"
        with caplog.at_level(logging.ERROR, logger="connectors.telegram"):
            assert await t.post(tg.text_update(ADA, "hi")) == 200
            await wait_until(lambda: any("401" in r.getMessage() for r in caplog.records))
    assert [c.status for c in t.fake.calls] == [401]  # a 4xx is not retried


def test_credentials_name_every_missing_key() -> None:
    with pytest.raises(ConnectorConfigError) as missing:
        TelegramInput.from_credentials(None)
    assert "bot_token (set TELEGRAM_BOT_TOKEN), secret_token (set TELEGRAM_WEBHOOK_SECRET)" in str(missing.value)
    with pytest.raises(ConnectorConfigError, match=r"missing secret_token \(set TELEGRAM_WEBHOOK_SECRET\)"):
        TelegramInput.from_credentials({"bot_token": "1:abc", "secret_token": ""})
    channel = TelegramInput.from_credentials({"bot_token": "1:abc", "secret_token": "s3cret"})
    assert channel.max_message_chars == 4096 and channel.max_body_bytes == 256 * 1024
    assert channel.api.base_url == "https://api.telegram.org/bot1:abc" and channel.name() == "telegram"
    custom = TelegramInput.from_credentials(
        {"bot_token": 12345, "secret_token": "s", "api_base_url": "http://127.0.0.1:9/", "timeout": 3, "attempts": 2, "max_message_chars": 100}
    )
    assert custom.api.base_url == "http://127.0.0.1:9/bot12345" and custom.api.policy.attempts == 2 and custom.api.policy.timeout == 3.0
    with pytest.raises(ConnectorConfigError, match="unknown option"):
        TelegramInput.from_credentials({"bot_token": "1:abc", "secret_token": "s", "token": "x"})
    with pytest.raises(ConnectorConfigError, match="must be positive"):
        TelegramInput.from_credentials({"bot_token": "1:abc", "secret_token": "s", "attempts": 0})
    with pytest.raises(ConnectorConfigError, match="secret_token"):
        TelegramInput.from_credentials({"bot_token": "1:abc", "secret_token": "has spaces!"})
