"""Web chat over socket.io, speaking Rasa's socketio protocol, plus Engage's own chat page.

The open-source Rasa web chat widget connects unchanged: it emits `session_request`
(answered with `session_confirm`) and `user_uttered` {message, session_id, customData},
and listens for `bot_uttered`. Differences from Rasa's `socketio` channel:

* the conversation id is the customer id resolved from the session (analytics.customers),
  so a visitor who links an e-mail or logs into the portal keeps one conversation;
* every socket is bound to one session (persistence always on: all tabs of a session get
  the replies), and a message naming another session is refused;
* messages are checked (text, size, metadata) and refused politely; a `message_id`
  seen before is dropped; a message that gets no reply gets an apology;
* GET /webhooks/socketio/chat serves a small chat page (no build step) that keeps its
  session and transcript across reloads;
* every long-polling request is answered at once (GuardedEngineServer: python-engineio 4.15
  answered some with 500 and left others hanging), and a packet the server cannot handle
  closes the socket (400 to its POST) instead of a logged traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

import engineio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer
from socketio.exceptions import ConnectionRefusedError as Refused
from socketio import packet as sio_packet

from analytics.customers import WEB, Identity
from analytics.schema import MESSAGE_REFUSED
from connectors.dedup import Deduplicator
from connectors.delivery import CountingOutput, OnNewMessage, deliver, drop_message, record_connector_event
from connectors.errors import RateLimited
from connectors.limits import CHAT_KEYS, CHAT_LIMITS, SENDER_RATE, Limiter, RateLimits
from connectors.identity import IdentityResolver, IdentityUnavailable, shared_resolver
from connectors.mailbox import Mailbox
from connectors.messages import APOLOGY_TEXT, SLOW_DOWN_TEXT, normalise_text, too_long_text
from connectors.options import Options
from connectors.payload import CappedJson

logger = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PAGE = Path(__file__).resolve().parent / "static" / "webchat.html"
UNREADABLE_TEXT = "Sorry, I couldn't read that message. Could you type it again?"
WRONG_SESSION_TEXT = "This chat window belongs to another session. Please reload the page."


# What a long-polling client may POST (engine.io protocol 4); anything else is a protocol error.
POSTABLE_PACKETS = frozenset({eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE, eio_packet.UPGRADE})
Refusal = Dict[str, Any]  # engineio's response dict: status, headers, response


class GuardedEngineServer(engineio.AsyncServer):
    """python-engineio's server with the long-polling POSTs it mishandles answered at once.

    engineio 4.15 (the newest Rasa 3.6 allows, and still upstream) answers a POST to a session
    the client has closed with 500 (`_get_socket` raises KeyError); and on a packet a client may
    not send (`0`, `2`, `6`, ...), an unreadable payload or a body over `max_http_buffer_size` it
    disconnects with `wait=True`, which waits for the client to collect the close packet, so the
    POST itself never gets an answer. Those POSTs are checked here first: 400 (413 for size) and
    the socket closed without waiting, before any of the payload's packets is handled.
    `message_ok` (set by the socket.io layer) also refuses a text message it could not handle.
    """

    message_ok: Callable[[Any], bool] = staticmethod(lambda data: True)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        environ = self._async["translate_request"](*args, **kwargs)
        if environ.get("REQUEST_METHOD") == "POST":
            refusal = await self._check_post(environ)
            if refusal is not None:
                return await self._make_response(refusal, environ)
        return await super().handle_request(*args, **kwargs)

    async def drop(self, sid: str) -> None:
        """Close a socket without waiting for its client to collect the close packet (a client
        that went quiet or broke the protocol never does, and engineio's disconnect() waits)."""
        socket = self.sockets.pop(sid, None)
        if socket is not None:
            await socket.close(wait=False)

    async def _check_post(self, environ: Dict[str, Any]) -> Optional[Refusal]:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        sid = query.get("sid", [""])[0]
        socket = self.sockets.get(sid)
        if socket is None or not socket.connected or socket.upgraded:
            return None  # engineio answers these with 400 itself
        if socket.closed:
            self.sockets.pop(sid, None)
            return self._bad_request("Session is disconnected")
        body = await environ["wsgi.input"].read()
        if len(body) > self.max_http_buffer_size:
            await self.drop(sid)
            return {"status": "413 PAYLOAD TOO LARGE", "headers": [("Content-Type", "text/plain")], "response": b'"Payload too large"'}
        try:
            packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
        except Exception:  # whatever a payload's decoding raises (ValueError, KeyError, RecursionError...)
            packets = None
        if packets is None or not all(self._postable(p, last=i == len(packets) - 1) for i, p in enumerate(packets)):
            await self.drop(sid)
            return self._bad_request("Malformed payload")
        return None

    def _postable(self, packet: eio_packet.Packet, last: bool) -> bool:
        # Checked up front so that no packet of a payload closes the socket under the ones after
        # it (engineio then answered 500: UnboundLocalError, or logged a KeyError per packet).
        if packet.packet_type not in POSTABLE_PACKETS:
            return False
        if packet.packet_type == eio_packet.CLOSE:
            return last
        if packet.packet_type == eio_packet.MESSAGE:
            return not packet.binary and self.message_ok(packet.data)
        return True


# Names the socket.io protocol keeps for itself: a client that emits one as an event would run the
# server's own handler with its arguments (found by the fuzz suite: `42["connect",[]]`).
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"})


def socketio_packet_ok(data: Any) -> bool:
    """True for a text socket.io packet this server can handle: a type a client sends, and for an
    event a name the protocol does not reserve and at most one argument (every handler here takes one). python-socketio logs a
    traceback for anything else (`42`, `4x`, `42[1]`, `42["user_uttered",1,2]`) and carries on.
    Binary events and their attachments are refused: nothing in Rasa's protocol sends them."""
    if not isinstance(data, str):
        return False
    try:
        packet = sio_packet.Packet(encoded_packet=data)
    except Exception:  # ValueError, RecursionError on deep nesting, ...
        return False
    kind = packet.packet_type
    if kind == sio_packet.EVENT:
        return (isinstance(packet.data, list) and 1 <= len(packet.data) <= 2 and isinstance(packet.data[0], str)
                and packet.data[0] not in RESERVED_EVENTS)
    if kind == sio_packet.ACK:
        return isinstance(packet.data, list)
    if kind == sio_packet.CONNECT:
        return packet.data is None or isinstance(packet.data, dict)
    return kind == sio_packet.DISCONNECT


class WebChatServer(AsyncServer):
    """python-socketio's server on GuardedEngineServer; a socket that sends a packet it cannot
    handle is closed (over long-polling its POST gets 400 first)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eio.message_ok = socketio_packet_ok

    def _engineio_server_class(self) -> type:
        return GuardedEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.eio.sockets:
            return  # dropped: what its WebSocket still sends goes nowhere
        if not socketio_packet_ok(data):
            logger.info("socketio: closed a socket that sent a malformed packet")
            await self.eio.drop(eio_sid)
            return
        await super()._handle_eio_message(eio_sid, data)


class WebChatOutput(SocketIOOutput):
    """Replies go to the session's room (every open tab), whatever the conversation id."""

    def __init__(self, sio: AsyncServer, bot_message_evt: str, room: str) -> None:
        super().__init__(sio, bot_message_evt)
        self.room = room

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=self.room)

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        await self.sio.emit(self.bot_message_evt, json_message, room=self.room)


class ProactiveWebChatOutput(SocketIOOutput):
    """A message nobody asked for (connectors.proactive): to every web-chat session of the customer,
    live to an open one, else into its mailbox, handed over when the session connects again.
    Messages carry `author` (the staff member's name) for the chat page to show."""

    reports_delivery = True  # says delivered or queued itself, per session

    def __init__(self, sio: AsyncServer, bot_message_evt: str, sessions: List[str], mailbox: Mailbox, report: Any) -> None:
        super().__init__(sio, bot_message_evt)
        self.sessions = sessions
        self.mailbox = mailbox
        self.report = report
        self.author: Optional[str] = None

    async def _send_message(self, socket_id: str, response: Any) -> None:
        message = {**response, "author": self.author} if self.author else dict(response)
        rooms = self.sio.manager.rooms.get("/", {})
        for session_id in self.sessions:
            if rooms.get(session_id):
                await self.sio.emit(self.bot_message_evt, message, room=session_id)
                self.report.delivered()
            else:
                await self.mailbox.put(WEB, session_id, message)
                self.report.queued()

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        await self._send_message(recipient_id, json_message)


class WebChatInput(InputChannel):
    """`connectors.webchat.WebChatInput` in credentials.yml; every option is optional."""

    OPTIONS = {
        "user_message_evt": str,
        "bot_message_evt": str,
        "socketio_path": str,
        "max_message_chars": int,
        "max_metadata_bytes": int,
        "max_packet_bytes": int,
        "cors_allowed_origins": list,
        "page_title": str,
        "rate_limits": object,  # a mapping, or false (connectors.limits.RateLimits.read)
    }

    def __init__(
        self,
        *,
        user_message_evt: str = "user_uttered",
        bot_message_evt: str = "bot_uttered",
        socketio_path: str = "/socket.io",
        max_message_chars: int = 4096,
        max_metadata_bytes: int = 8192,
        max_packet_bytes: int = 64 * 1024,
        cors_allowed_origins: Optional[List[str]] = None,
        page_title: str = "Chat with us",
        rate_limits: RateLimits = CHAT_LIMITS,
        resolver: Optional[IdentityResolver] = None,
        deduplicator: Optional[Deduplicator] = None,
    ) -> None:
        self.user_message_evt = user_message_evt
        self.bot_message_evt = bot_message_evt
        self.socketio_path = socketio_path
        self.max_message_chars = max_message_chars
        self.max_metadata_bytes = max_metadata_bytes
        self.max_packet_bytes = max_packet_bytes
        self.cors_allowed_origins = cors_allowed_origins if cors_allowed_origins is not None else []
        self.page_title = page_title
        self.limiter = Limiter(rate_limits)
        self.resolver = resolver or shared_resolver()
        self.deduplicator = deduplicator or Deduplicator(self.resolver)
        self._mailbox: Optional[Mailbox] = None
        self.sio: Optional[WebChatServer] = None
        self.app: Any = None
        self._turns: Set["asyncio.Future[None]"] = set()

    @classmethod
    def name(cls) -> str:
        # Rasa's name, so the widget's channel and the /webhooks/socketio/ prefix stay as documented.
        return "socketio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "WebChatInput":
        options = Options.read(f"{__name__}.WebChatInput", credentials, cls.OPTIONS)
        options.positive("max_message_chars", "max_metadata_bytes", "max_packet_bytes")
        values = dict(options.values)
        values["rate_limits"] = RateLimits.read(options.owner, values.pop("rate_limits", None), CHAT_LIMITS, CHAT_KEYS)
        return cls(**values)

    @property
    def mailbox(self) -> Mailbox:
        if self._mailbox is None:  # lazily: the Redis client is made on first use, in the server's loop
            self._mailbox = Mailbox(self.resolver.client)
        return self._mailbox

    def get_output_channel(self) -> Optional[OutputChannel]:
        return None  # replies need the session's room; there is no channel-wide output

    async def proactive_output(self, conversation_id: str, report: Any) -> OutputChannel:
        """connectors.proactive: every web-chat session linked to the customer (live, or on its next connect)."""
        from connectors.proactive import Unreachable

        if self.sio is None:
            raise Unreachable("The web chat is not running on this server.")
        linked = await self.resolver.directory.identities(conversation_id) if conversation_id.startswith("C-") else []
        sessions = [item.identity.value for item in linked if item.identity.kind == WEB]
        if not sessions and conversation_id.startswith(f"{WEB}:"):
            sessions = [conversation_id.split(":", 1)[1]]
        if not sessions:
            raise Unreachable("No web-chat session is linked to this customer.")
        return ProactiveWebChatOutput(self.sio, self.bot_message_evt, sessions[-3:], self.mailbox, report)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        # The widget is served from other origins: the allowed ones come from credentials.yml
        # (["*"] for any); [] keeps python-socketio's default, same origin only.
        origins = self.cors_allowed_origins
        sio = WebChatServer(
            async_mode="sanic",
            cors_allowed_origins="*" if "*" in origins else (origins or None),
            max_http_buffer_size=self.max_packet_bytes,
            json=CappedJson,  # packets nested deeper than the other channels allow are not parsed
            # One socket's events are handled in order: a customer's messages must reach Rasa
            # in the order they were typed (the default runs each in its own task).
            async_handlers=False,
        )
        self.sio = sio
        blueprint = SocketBlueprint(sio, self.socketio_path, "engage_webchat", __name__)
        page = _page(self.page_title, self.socketio_path)

        @blueprint.listener("before_server_start")
        async def remember_app(app: Any, _: Any) -> None:
            self.app = app  # socket.io handlers get no request to reach it through

        @blueprint.listener("before_server_stop")
        async def disconnect_everyone(app: Any, _: Any) -> None:
            await self.disconnect_all()

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/chat", methods=["GET"])
        async def chat_page(_: Request) -> HTTPResponse:
            return response.html(page, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

        @sio.on("connect")
        async def connect(sid: str, environ: Dict[str, Any], auth: Any = None) -> bool:
            request = environ.get("sanic.request")
            peer = (request.ip if request is not None else environ.get("REMOTE_ADDR")) or ""
            forwarded = request.headers.get("x-forwarded-for") if request is not None else environ.get("HTTP_X_FORWARDED_FOR")
            try:
                self.limiter.check_address(self.limiter.client_address(peer, forwarded))
            except RateLimited as limited:
                logger.warning("socketio: refused a connection from %s: too many from that address", peer)
                # The client gets a connect_error saying when to come back (the chat page waits that long).
                raise Refused(limited.detail, {"retry_after": limited.retry_after}) from None
            return True

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None) -> None:
            requested = data.get("session_id") if isinstance(data, dict) else None
            session_id = requested if isinstance(requested, str) and SESSION_ID.match(requested) else uuid.uuid4().hex
            await self._bind(sid, session_id)
            await sio.emit("session_confirm", session_id, room=sid)

        @sio.on(self.user_message_evt)
        async def user_uttered(sid: str, data: Any = None) -> None:
            await self._on_message(sid, data, on_new_message)

        return blueprint

    async def disconnect_all(self) -> None:
        """Close every socket. A stop does this first: pending long-polls end at once instead of
        holding the server until the ping interval runs out."""
        if self.sio is None:
            return
        for engine_sid in list(self.sio.eio.sockets):
            await self.sio.eio.drop(engine_sid)

    async def _bind(self, sid: str, session_id: str) -> None:
        assert self.sio is not None
        session = await self.sio.get_session(sid)
        previous = session.get("session_id")
        if previous and previous != session_id:
            await self.sio.leave_room(sid, previous)
        await self.sio.save_session(sid, {"session_id": session_id})
        await self.sio.enter_room(sid, session_id)
        if previous != session_id:
            await self._hand_over_waiting(sid, session_id)

    async def _hand_over_waiting(self, sid: str, session_id: str) -> None:
        """Messages that came for this session while it was closed (connectors.proactive), oldest first."""
        assert self.sio is not None
        try:
            waiting = await self.mailbox.take(WEB, session_id)
        except Exception as exc:  # Redis away: they stay in the mailbox for the next connect
            logger.warning("socketio: could not read the waiting messages of %s: %s", session_id, exc)
            return
        for message in waiting:
            await self.sio.emit(self.bot_message_evt, message, room=sid)

    async def _on_message(self, sid: str, data: Any, on_new_message: OnNewMessage) -> None:
        assert self.sio is not None
        session_id = (await self.sio.get_session(sid)).get("session_id")
        claimed = data.get("session_id") if isinstance(data, dict) else None
        if session_id is None and isinstance(claimed, str) and SESSION_ID.match(claimed):
            session_id = claimed  # a client that skipped session_request (allowed by Rasa's protocol)
            await self._bind(sid, session_id)
        if session_id is None:
            await self._refuse(sid, None, "no_session", UNREADABLE_TEXT)
            return
        if claimed is not None and claimed != session_id:
            await self._refuse(sid, session_id, "session_mismatch", WRONG_SESSION_TEXT)
            return
        problem = self._check(data)
        if problem is not None:
            code, text = problem
            await self._refuse(sid, session_id, code, text)
            return
        message_id = data.get("message_id")
        if self.limiter.sender_wait(session_id):
            # Not handed to Rasa: recorded with its text, and the customer asked to slow down now and then.
            notice = self.sio.emit(self.bot_message_evt, {"text": SLOW_DOWN_TEXT}, room=sid) if self.limiter.notice_due(session_id) else None
            drop_message(self.app, self.name(), f"{WEB}:{session_id}", SENDER_RATE,
                         message_id=message_id if isinstance(message_id, str) else "", text=normalise_text(data["message"]), notice=notice)
            return
        if isinstance(message_id, str) and not await self.deduplicator.first_time("socketio", message_id):
            logger.info("socketio: dropped a repeated message %s", message_id[:80])
            return
        output = CountingOutput(WebChatOutput(self.sio, self.bot_message_evt, room=session_id))
        try:
            customer_id = await self.resolver.customer_for([Identity.of(WEB, session_id)])
        except IdentityUnavailable:
            await output.send_text_message(session_id, APOLOGY_TEXT)
            return
        metadata = data.get("metadata", data.get("customData")) or {}
        text = normalise_text(data["message"])  # as every channel: a lone surrogate crashed the featurizer
        message = UserMessage(text, output, customer_id, input_channel=self.name(), metadata=metadata)
        # A customer who closes the tab mid-answer cancels this handler; Rasa's handling must not
        # be cut short with it (the tracker unsaved, the action server's records already written).
        # The turn completes, and its replies reach the session's other tabs.
        turn = asyncio.ensure_future(deliver(self.app, message, on_new_message))
        self._turns.add(turn)
        turn.add_done_callback(self._turns.discard)
        await asyncio.shield(turn)

    def _check(self, data: Any) -> Optional[tuple]:
        if not isinstance(data, dict):
            return "not_an_object", UNREADABLE_TEXT
        text = data.get("message")
        if not isinstance(text, str) or not text.strip():
            return "empty_message", UNREADABLE_TEXT
        if len(text) > self.max_message_chars:
            return "message_too_long", too_long_text(len(text), self.max_message_chars)
        metadata = data.get("metadata", data.get("customData"))
        if metadata is not None:
            if not isinstance(metadata, dict):
                return "invalid_metadata", UNREADABLE_TEXT
            if len(json.dumps(metadata, ensure_ascii=False).encode("utf-8", "replace")) > self.max_metadata_bytes:
                return "metadata_too_large", UNREADABLE_TEXT
        return None

    async def _refuse(self, sid: str, session_id: Optional[str], code: str, text: str) -> None:
        assert self.sio is not None
        logger.info("socketio: refused a message from %s: %s", session_id or sid, code)
        await self.sio.emit(self.bot_message_evt, {"text": text}, room=sid)
        if session_id is not None and code in ("message_too_long", "metadata_too_large"):
            record_connector_event(self.app, MESSAGE_REFUSED, f"web:{session_id}", self.name(), {"reason": code})


def _page(title: str, socketio_path: str) -> str:
    html = PAGE.read_text(encoding="utf-8")
    return html.replace("{{TITLE}}", _escape(title)).replace("{{SOCKETIO_PATH}}", json.dumps(socketio_path))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
