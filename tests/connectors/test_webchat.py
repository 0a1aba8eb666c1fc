"""The web chat channel on a real Sanic app, driven by a real socket.io client speaking the widget's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import aiohttp
import pytest
import socketio

from connectors.identity import IdentityResolver
from analytics.customers import CUSTOMER_ID, Identity
from connectors.errors import ConnectorConfigError
from connectors.limits import Rate, RateLimits
from connectors.messages import APOLOGY_TEXT, SLOW_DOWN_TEXT
from connectors.webchat import WRONG_SESSION_TEXT, WebChatInput
from tests.connectors.support import Recorder, channel_app, read_stream, serving

WIDGET_SESSION = "0d1f6b1e9c2a4a7e8f3b5c6d7e8f9a0b"


class Widget:
    """What the Rasa web chat widget does on the wire: session_request, user_uttered, bot_uttered.

    Long-polling only here: the Rasa runtime pins aiohttp 3.9, too old for python-socketio's
    WebSocket client. The end-to-end tests (newer aiohttp) and the browser test use WebSockets.
    """

    opened: List["Widget"] = []

    def __init__(self, base: str) -> None:
        Widget.opened.append(self)
        self.base = base
        self.client = socketio.AsyncClient(reconnection=False)
        self.replies: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.session: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self.client.on("bot_uttered", self._on_reply)
        self.client.on("session_confirm", self._on_session)

    async def _on_reply(self, data: Dict[str, Any]) -> None:
        await self.replies.put(data)

    async def _on_session(self, session_id: str) -> None:
        if not self.session.done():
            self.session.set_result(session_id)

    async def open(self, session_id: Optional[str] = None, transports: Tuple[str, ...] = ("polling",)) -> str:
        await self.client.connect(self.base, socketio_path="/socket.io", transports=list(transports))
        await self.client.emit("session_request", {"session_id": session_id})
        return await asyncio.wait_for(self.session, 10)

    async def say(self, text: Any, session_id: str, **extra: Any) -> None:
        await self.client.emit("user_uttered", {"message": text, "session_id": session_id, **extra} if not isinstance(text, dict) else text)

    async def reply(self, timeout: float = 10) -> Dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def close(self) -> None:
        # The server has closed the socket already; abort skips the client's wait for the
        # close handshake (a long-poll timeout with this aiohttp).
        with contextlib.suppress(Exception):
            await self.client.eio.disconnect(abort=True)


@contextlib.asynccontextmanager
async def webchat(recorder: Recorder, redis_url: str, tmp_path: Path, **options: Any) -> AsyncIterator[Tuple[str, IdentityResolver]]:
    """The channel on a real Sanic app. Widgets opened inside are disconnected by the server
    (what a stop does), then closed, so the server has no open connection left."""
    async with channel_app(redis_url, tmp_path) as (app, _, resolver):
        channel = WebChatInput(resolver=resolver, **options)
        app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/socketio")
        async with serving(app) as base:
            yield base, resolver
            await channel.disconnect_all()  # as a server stop does: ends the long-polls
            for widget in Widget.opened:
                await widget.close()
            Widget.opened.clear()


async def test_the_widget_protocol_gets_a_session_and_replies(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Hello!",))
    async with webchat(recorder, redis_url, tmp_path) as (base, resolver):
        widget = Widget(base)
        session = await widget.open(None)
        assert len(session) == 32
        await widget.say("hi there", session, customData={"page": "/pricing"})
        assert await widget.reply() == {"text": "Hello!"}
        (message,) = recorder.calls
        assert CUSTOMER_ID.match(message.sender_id) and message.input_channel == "socketio"
        assert message.text == "hi there" and message.metadata == {"page": "/pricing"}
        assert await resolver.directory.owner(Identity.of("web", session)) == message.sender_id


async def test_a_known_session_keeps_its_customer_and_every_tab_hears_the_replies(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("one", "two"))
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        first, second = Widget(base), Widget(base)
        assert await first.open(WIDGET_SESSION) == WIDGET_SESSION
        assert await second.open(WIDGET_SESSION) == WIDGET_SESSION  # a second tab, or a reload
        await first.say("hello", WIDGET_SESSION)
        for widget in (first, second):
            assert [(await widget.reply())["text"] for _ in range(2)] == ["one", "two"]
        await second.say("again", WIDGET_SESSION)
        assert (await first.reply())["text"] == "one"
        assert recorder.calls[0].sender_id == recorder.calls[1].sender_id


async def test_buttons_arrive_as_quick_replies(redis_url: str, tmp_path: Path) -> None:
    class Buttons(Recorder):
        async def __call__(self, message: Any) -> None:
            self.calls.append(message)
            await message.output_channel.send_text_with_buttons(message.sender_id, "Pick one", [{"title": "Pricing", "payload": "/ask_pricing"}])

    async with webchat(Buttons(), redis_url, tmp_path) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say("menu", session)
        reply = await widget.reply()
        assert reply["text"] == "Pick one" and reply["quick_replies"] == [{"content_type": "text", "title": "Pricing", "payload": "/ask_pricing"}]


@pytest.mark.parametrize(
    "packet, expected",
    [
        ("x" * 5000, "too long for me (5000 characters)"),
        ("   ", "couldn't read that message"),
        (12, "couldn't read that message"),
        ({"not": "a message"}, "couldn't read that message"),
    ],
    ids=["too-long", "blank", "not-text", "no-message-field"],
)
async def test_bad_messages_get_a_polite_reply_and_never_reach_rasa(redis_url: str, tmp_path: Path, packet: Any, expected: str) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say(packet, session)
        assert expected in (await widget.reply())["text"]
        await widget.say("still there?", session)  # the socket and the server carry on
        assert (await widget.reply())["text"].startswith("Hi!")
    assert [m.text for m in recorder.calls] == ["still there?"]


async def test_oversized_metadata_and_other_sessions_are_refused(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path, max_metadata_bytes=100) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say("hi", session, customData={"blob": "y" * 500})
        assert "couldn't read" in (await widget.reply())["text"]
        await widget.say("hi", "ffffffffffffffffffffffffffffffff")
        assert (await widget.reply())["text"] == WRONG_SESSION_TEXT
    assert recorder.calls == []
    assert [e.data["reason"] for e in read_stream(redis_url) if e.type == "message_refused"] == ["metadata_too_large"]


async def test_a_repeated_message_id_is_handled_once(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        for _ in range(3):
            await widget.say("only once", session, message_id="m-42")
        await widget.say("next", session, message_id="m-43")
        await widget.reply()
        await widget.reply()
        await asyncio.sleep(0.3)
    assert [m.text for m in recorder.calls] == ["only once", "next"]


async def test_silence_becomes_an_apology(redis_url: str, tmp_path: Path) -> None:
    async with webchat(Recorder(replies=()), redis_url, tmp_path) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say("hello?", session)
        assert (await widget.reply())["text"] == APOLOGY_TEXT
    assert [e.type for e in read_stream(redis_url) if e.type == "reply_failed"] == ["reply_failed"]


async def test_an_oversized_packet_drops_the_socket_not_the_server(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path, max_packet_bytes=2000) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say("z" * 10_000, session)
        await asyncio.sleep(0.5)
        again = Widget(base)
        session = await again.open()
        await again.say("hello", session)
        assert (await again.reply())["text"].startswith("Hi!")
    assert [m.text for m in recorder.calls] == ["hello"]


async def test_the_chat_page_and_health_are_served(redis_url: str, tmp_path: Path) -> None:
    async with webchat(Recorder(), redis_url, tmp_path, page_title="Quillstack <help>") as (base, _):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/webhooks/socketio/chat") as page:
                html = await page.text()
                assert page.status == 200 and page.content_type == "text/html"
            async with session.get(f"{base}/webhooks/socketio/") as health:
                assert await health.json() == {"status": "ok"}
    assert "<title>Quillstack &lt;help&gt;</title>" in html and 'var PATH = "/socket.io";' in html


def test_credentials_are_checked_by_name() -> None:
    assert WebChatInput.from_credentials(None).max_message_chars == 4096
    assert WebChatInput.from_credentials({"max_message_chars": 100, "cors_allowed_origins": ["https://quillstack.example"]}).max_message_chars == 100
    with pytest.raises(ConnectorConfigError, match="unknown option"):
        WebChatInput.from_credentials({"max_chars": 1})
    with pytest.raises(ConnectorConfigError, match="must be positive"):
        WebChatInput.from_credentials({"max_message_chars": 0})
    with pytest.raises(ConnectorConfigError, match="must be int"):
        WebChatInput.from_credentials({"max_message_chars": "lots"})


class Polling:
    """A raw engine.io long-polling client (protocol 4): each request is one HTTP call we can time."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.url = f"{base}/socket.io/?EIO=4&transport=polling"
        self.sid = ""

    async def open(self) -> str:
        async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            assert response.status == 200
            self.sid = json.loads((await response.text())[1:])["sid"]
        assert await self.post("40") == (200, "ok")  # socket.io connect
        return self.sid

    async def post(self, body: "str | bytes") -> Tuple[int, str]:
        async with self.session.post(f"{self.url}&sid={self.sid}", data=body, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, (await response.text()).lower()

    async def get(self) -> Tuple[int, str]:
        async with self.session.get(f"{self.url}&sid={self.sid}", timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, await response.text()


SESSION_REQUEST = '42["session_request",{"session_id":null}]'
USER_UTTERED = '42["user_uttered",{"message":"hello","session_id":"%s"}]'


@pytest.mark.parametrize(
    "bodies, status",
    [
        (["1", "2"], 400),  # a POST after the client's own close packet (was 500)
        (["1", "42[\"user_uttered\",{}]"], 400),
        (["6"], 400),  # noop: a packet only the server sends (hung until the client gave up)
        (["0"], 400),  # open
        (["2"], 400),  # ping
        (["9"], 400),  # no such packet type
        (["\x1e"], 400),  # empty packets
        ([b"4\xff\xfe"], 400),  # not UTF-8
        (["4" + "x" * 70_000], 413),  # over max_packet_bytes (hung)
        ([SESSION_REQUEST + "\x1e6"], 400),  # a good packet before a bad one: neither is handled
    ],
    ids=["after-close", "message-after-close", "noop", "open", "ping", "unknown-type", "empty-packets", "not-utf8", "too-large", "good-then-bad"],
)
async def test_every_long_polling_post_is_answered_at_once(redis_url: str, tmp_path: Path, bodies: List[Any], status: int) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        async with aiohttp.ClientSession() as session:
            client = Polling(session, base)
            await client.open()
            answers = [await client.post(body) for body in bodies]  # each within the 5 s client timeout
            assert answers[-1][0] == status, answers
            assert (await client.get())[0] == 400  # the session is gone: nothing more is handled on it
            fresh = Polling(session, base)  # ...and the server carries on
            await fresh.open()
            assert await fresh.post(SESSION_REQUEST) == (200, "ok")
            confirm = await fresh.get()
            session_id = json.loads(confirm[1][confirm[1].index("[") :])[1]
            assert await fresh.post(USER_UTTERED % session_id) == (200, "ok")
            assert "Hi!" in (await fresh.get())[1]
    assert [m.text for m in recorder.calls] == ["hello"]


@pytest.mark.parametrize(
    "body",
    [
        "42", "4x", "42[1]", '42["user_uttered",1,2]', "4[1,2]", '43"not a list"', "44", "40[]", "4" + "[" * 5000,
        "b\x1e5", "bAAA\x1e40", '451-["user_uttered",{"_placeholder":true,"num":0}]', "1\x1e40", '42["connect",[]]',
        '42["disconnect"]',
    ],
    ids=[
        "event-without-data", "unknown-type", "event-without-name", "too-many-arguments", "not-socketio", "ack-not-a-list",
        "connect-error", "connect-with-a-list", "deep-nesting", "binary-then-upgrade", "binary-then-connect", "binary-event",
        "packets-after-close", "reserved-connect", "reserved-disconnect",
    ],
)
async def test_a_socketio_packet_the_server_cannot_handle_gets_400(redis_url: str, tmp_path: Path, body: str) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        async with aiohttp.ClientSession() as session:
            client = Polling(session, base)
            await client.open()
            assert (await client.post(body))[0] == 400
            assert (await client.get())[0] == 400  # closed: python-socketio would log a traceback and go on
    assert recorder.calls == []


async def test_a_turn_completes_when_the_customer_leaves_mid_answer(redis_url: str, tmp_path: Path) -> None:
    class Slow(Recorder):
        finished: List[str] = []

        async def __call__(self, message: Any) -> None:
            await super().__call__(message)
            self.finished.append(message.text)

    recorder = Slow(delay=0.5)
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        async with aiohttp.ClientSession() as session:
            client = Polling(session, base)
            await client.open()
            assert await client.post(SESSION_REQUEST) == (200, "ok")
            confirm = (await client.get())[1]
            session_id = json.loads(confirm[confirm.index("[") :])[1]
            with pytest.raises(asyncio.TimeoutError):  # the POST is held while the message is handled: leave
                await session.post(f"{client.url}&sid={client.sid}", data=USER_UTTERED % session_id, timeout=aiohttp.ClientTimeout(total=0.1))
            await asyncio.sleep(1.0)
    assert recorder.finished == ["hello"]  # the handling went on to the end, not cancelled with the request


async def test_a_lone_surrogate_reaches_rasa_as_a_replacement_character(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with webchat(recorder, redis_url, tmp_path) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        await widget.say("hi \ud800", session)  # JSON carries it; the MiniLM tokenizer failed on it
        assert (await widget.reply())["text"].startswith("Hi!")
    assert [m.text for m in recorder.calls] == ["hi \ufffd"]


async def test_a_session_that_sends_too_fast_is_asked_to_slow_down_and_nothing_is_dropped_silently(redis_url: str, tmp_path: Path) -> None:
    # Issue 9, item 5: the web chat had no limit at all.
    recorder = Recorder(replies=("ok",))
    limits = RateLimits(sender=Rate(per_minute=6, burst=2), ip=None)
    async with webchat(recorder, redis_url, tmp_path, rate_limits=limits) as (base, _):
        widget = Widget(base)
        session = await widget.open()
        for i in range(5):
            await widget.say(f"message {i}", session)
        texts = [(await widget.reply())["text"] for _ in range(3)]  # two answers and one "slow down"
        await asyncio.sleep(0.5)
    assert sorted(texts) == sorted(["ok", "ok", SLOW_DOWN_TEXT])
    assert [m.text for m in recorder.calls] == ["message 0", "message 1"]
    dropped = [e for e in read_stream(redis_url) if e.type == "message_dropped"]
    assert [(e.text, e.data["reason"], e.conversation_id) for e in dropped] == [(f"message {i}", "sender_rate", f"web:{session}") for i in (2, 3, 4)]


async def test_too_many_connections_from_one_address_are_refused(redis_url: str, tmp_path: Path) -> None:
    async with webchat(Recorder(), redis_url, tmp_path, rate_limits=RateLimits(sender=None, ip=Rate(per_minute=6, burst=2))) as (base, _):
        await Widget(base).open()
        await Widget(base).open()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await Widget(base).open()


def test_rate_limits_are_read_from_credentials() -> None:
    channel = WebChatInput.from_credentials({"rate_limits": {"sender_per_minute": 10, "sender_burst": 3}})
    assert channel.limiter.limits.sender == Rate(per_minute=10, burst=3)
    assert WebChatInput.from_credentials({"rate_limits": False}).limiter.limits.sender is None
    with pytest.raises(ConnectorConfigError, match="max_queued"):
        WebChatInput.from_credentials({"rate_limits": {"max_queued": 5}})


async def test_a_refused_connection_is_told_when_to_come_back(redis_url: str, tmp_path: Path) -> None:
    async with webchat(Recorder(), redis_url, tmp_path, rate_limits=RateLimits(sender=None, ip=Rate(per_minute=6, burst=1))) as (base, _):
        await Widget(base).open()
        polling = f"{base}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(polling) as opened:
                sid = json.loads((await opened.text())[1:])["sid"]
            async with http.post(f"{polling}&sid={sid}", data="40") as connecting:
                assert connecting.status == 200
            async with http.get(f"{polling}&sid={sid}") as answer:
                packet = await answer.text()
    assert packet.startswith("44"), packet  # connect_error
    refusal = json.loads(packet[2:])
    assert "Too many requests from your address" in refusal["message"]
    assert 1 <= refusal["data"]["retry_after"] <= 10  # 6 a minute: the next place frees within 10 s
