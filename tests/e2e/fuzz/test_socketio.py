"""Fuzzing the web chat: socket.io events of every shape from a real client (the widget's
session_request and user_uttered, with wrong types, other sessions, odd text and metadata,
repeated message ids), and raw engine.io long-polling requests carrying any packets. Every
request is answered quickly and below 500; every message gets a reply; a refused message leaves
no customer or log record behind; an accepted one is one turn in both the tracker and the log."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Dict, List, Optional, Tuple

import redis
import requests
import socketio
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.fuzz.support import (
    REFUSAL_SECONDS, SENTINEL, SENTINEL_REPLY, Fresh, LogTail, Tally, assert_turn_recorded, customer_of, edge_text, expected_text, fresh_in,
    fuzz, json_scalars, json_values, message_texts, ordinary, plain_text, timed,
)

SESSION = Fresh(lambda: "")  # the session the server confirmed, filled in when sent
FRESH_MESSAGE_ID = Fresh(lambda: uuid.uuid4().hex)
FRESH_SESSION_ID = Fresh(lambda: uuid.uuid4().hex)  # a session the client asks to resume
MAX_METADATA_BYTES = 8192  # credentials.yml leaves WebChatInput's defaults
REPLY_SECONDS = 30.0

session_requests = st.one_of(
    st.just({"session_id": None}), st.just({"session_id": None}),
    st.fixed_dictionaries({"session_id": st.one_of(st.just(FRESH_SESSION_ID), plain_text, edge_text, json_scalars, st.just("s" * 100))}),
    json_values,
)
metadata = st.one_of(st.dictionaries(plain_text, json_scalars, max_size=3), json_values, st.just({"blob": "m" * 9000}))
messages = st.one_of(
    st.fixed_dictionaries(
        {"message": message_texts, "session_id": st.just(SESSION)},
        optional={"customData": metadata, "metadata": metadata, "message_id": st.just(FRESH_MESSAGE_ID)},
    ),
    st.fixed_dictionaries(
        {"message": message_texts, "session_id": st.just(SESSION)},
        optional={"customData": st.dictionaries(plain_text, json_scalars, max_size=3), "message_id": st.just(FRESH_MESSAGE_ID)},
    ),
    st.fixed_dictionaries(
        {"message": st.one_of(message_texts, json_values)},
        optional={"session_id": st.one_of(st.just("ffffffffffffffffffffffffffffffff"), json_scalars, st.just(SESSION)), "customData": metadata},
    ),
    json_values,
)


def should_accept(data: Any, session_id: str) -> bool:
    """What WebChatInput._check and the session check let through, restated."""
    if not isinstance(data, dict) or not ordinary(data.get("message")):
        return False
    if data.get("session_id") not in (None, session_id):  # none named: the socket's own
        return False
    meta = data.get("metadata", data.get("customData"))
    if meta is None:
        return True
    return isinstance(meta, dict) and len(json.dumps(meta, ensure_ascii=False).encode("utf-8", "replace")) <= MAX_METADATA_BYTES


async def connect_politely(client: socketio.AsyncClient, url: str, attempts: int = 4) -> None:
    """Connect; when the server refuses for now (the per-address limit: a long run connects faster
    than one address may) wait the retry_after it gives, as the chat page does, and try again."""
    refusals: List[Any] = []
    client.on("connect_error", refusals.append)
    for attempt in range(attempts):
        try:
            await client.connect(url, socketio_path="/socket.io", transports=["websocket"], wait_timeout=REFUSAL_SECONDS)
            return
        except socketio.exceptions.ConnectionError:
            after = refusals[-1].get("data", {}).get("retry_after") if refusals and isinstance(refusals[-1], dict) else None
            if not after or attempt == attempts - 1:
                raise
            await asyncio.sleep(min(float(after), 60.0))


async def converse(url: str, hello: Any, data: Any, repeat: bool) -> Tuple[str, Any, List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Ask for a session with `hello`, send `data` (SESSION filled in), and, when `repeat`, the
    same again and then SENTINEL: (session, data sent, replies to data, replies after)."""
    client = socketio.AsyncClient(reconnection=False)
    replies: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
    confirmed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
    client.on("bot_uttered", replies.put)
    client.on("session_confirm", lambda session_id: confirmed.done() or confirmed.set_result(session_id))
    await connect_politely(client, url)
    try:
        await client.emit("session_request", hello)
        session_id = await asyncio.wait_for(confirmed, REFUSAL_SECONDS)
        data = fresh_in(data, {id(SESSION): session_id})
        await client.emit("user_uttered", data)
        first = [await asyncio.wait_for(replies.get(), REPLY_SECONDS)]  # every message gets an answer
        after: List[Dict[str, Any]] = []
        if repeat:
            await client.emit("user_uttered", data)
            await client.emit("user_uttered", {"message": SENTINEL, "session_id": session_id})
            # Events of one socket are handled in order: once SENTINEL is refused, the repeat has
            # been handled.
            while not after or after[-1].get("text") != SENTINEL_REPLY:
                after.append(await asyncio.wait_for(replies.get(), REPLY_SECONDS))
        return session_id, data, first, after
    finally:
        await client.disconnect()


def test_socketio_events_get_answers_and_write_whole_turns_or_nothing(stack: Stack, store: redis.Redis, log: LogTail) -> None:
    tally = Tally("socketio", stack)

    @fuzz
    @given(hello=session_requests, data=messages, repeat=st.booleans())
    def one(hello: Any, data: Any, repeat: bool) -> None:
        session_id, data, first, after = asyncio.run(converse(stack.rasa_url, fresh_in(hello, {}), data, repeat))
        tally.count("answered")
        assert isinstance(session_id, str) and 8 <= len(session_id) <= 64
        customer = customer_of(store, f"web:{session_id}")
        if not should_accept(data, session_id):
            assert customer is None, (data, first)  # refused before a customer was made
            return
        assert customer, (data, first)
        # Sent twice (repeat), a message with a message_id is handled once, one without it twice.
        times = 2 if repeat and not isinstance(data.get("message_id"), str) else 1
        assert_turn_recorded(stack, log, customer, [expected_text(data["message"])] * times)
        tally.turns_checked += 1

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    session_id, _, first, _ = asyncio.run(converse(stack.rasa_url, {"session_id": None}, {"message": "hello", "session_id": SESSION}, False))
    assert first[0].get("text"), first  # still serving


# --- raw long-polling ----------------------------------------------------------------------------

packet_data = st.one_of(
    st.just(""), plain_text, edge_text, json_values.map(json.dumps),
    st.builds(lambda event, args: json.dumps([event, args]), st.sampled_from(["user_uttered", "session_request", "connect", "x"]), json_values),
)
packets = st.one_of(
    st.builds(lambda kind, data: kind + data, st.sampled_from(list("0123456789") + ["b", "", "x"]), packet_data),
    st.builds(lambda sio, data: "4" + sio + data, st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "7", "2/", "0/admin,", "51-", "9"]), packet_data),
)
polling_bodies = st.one_of(
    st.lists(packets, min_size=1, max_size=5).map(lambda parts: "\x1e".join(parts).encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
    st.integers(min_value=60_000, max_value=200_000).map(lambda n: b"4" + b"x" * n),
    st.sampled_from([b"", b"1", b"6", b"0", b"2", b"2probe", b"5", b"d=4hi", b"\x1e\x1e", b"41", b"1\x1e42[\"user_uttered\",{}]"]),
)


def test_socketio_long_polling_answers_every_request_quickly(stack: Stack) -> None:
    """Item 11 of issue 9: after the handshake, `40` and a fuzzed POST, every request (the POST,
    the next GET, the closing POST) is answered in under REFUSAL_SECONDS and below 500."""
    base = f"{stack.rasa_url}/socket.io/?EIO=4&transport=polling"
    tally = Tally("socketio-polling", stack)

    def request(method: str, url: str, body: Optional[bytes] = None) -> requests.Response:
        response, seconds = timed(method, url, data=body, headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert response.status_code < 500, (method, body and body[:200], response.status_code, response.text[:300])
        assert seconds < REFUSAL_SECONDS, (method, body and body[:200], f"{seconds:.1f}s")
        return response

    @fuzz
    @given(body=polling_bodies)
    def one(body: bytes) -> None:
        opened = request("GET", base)
        assert opened.status_code == 200, opened.text
        url = f"{base}&sid={json.loads(opened.text[1:])['sid']}"
        assert request("POST", url, b"40").status_code == 200
        answer = request("POST", url, body)
        tally.count(answer.status_code)
        request("GET", url)  # queued packets (the connect ack at least) or 400 for a closed session
        request("POST", url, b"1")  # close, whatever state the session is in

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    session_id, _, first, _ = asyncio.run(converse(stack.rasa_url, {"session_id": None}, {"message": "hello", "session_id": SESSION}, False))
    assert first[0].get("text"), first  # still serving
