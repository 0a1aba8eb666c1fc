"""One customer across channels, against the running stack: start on the web chat, confirm an
e-mail with a one-time code, continue in the portal, and the open form is still there."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from typing import Any, Dict, List

import jwt
import redis
import requests
import socketio

from scripts.stack import Stack
from tests.e2e.conftest import eventually, log_events, texts


class WebChat:
    """A socket.io client speaking the Rasa widget's protocol, collecting each turn's replies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.AsyncClient(reconnection=False)
        self.replies: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.session_id = ""

    async def open(self) -> None:
        confirmed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self.client.on("bot_uttered", self.replies.put)
        self.client.on("session_confirm", lambda sid: confirmed.done() or confirmed.set_result(sid))
        await self.client.connect(self.url, socketio_path="/socket.io", transports=["websocket"])
        await self.client.emit("session_request", {"session_id": None})
        self.session_id = await asyncio.wait_for(confirmed, 10)

    async def say(self, text: str, quiet: float = 2.0) -> str:
        """Send one message; the text of every reply until the bot has been quiet for `quiet` seconds."""
        await self.client.emit("user_uttered", {"message": text, "session_id": self.session_id})
        said: List[str] = [(await asyncio.wait_for(self.replies.get(), 60)).get("text") or ""]
        while True:
            try:
                said.append((await asyncio.wait_for(self.replies.get(), quiet)).get("text") or "")
            except asyncio.TimeoutError:
                return "\n".join(said)


def code_sent_to(stack: Stack, email: str, timeout: float = 20.0) -> str:
    """The one-time code the default mailer wrote to the action server's log."""
    pattern = re.compile(rf"mail to {re.escape(email)} .*Your code is (\d{{6}})")
    log = stack.logs / "actions.log"
    return eventually(lambda: (pattern.findall(log.read_text(encoding="utf-8", errors="replace")) or [None])[-1],
                      f"a code for {email} in the action server's log", timeout)


def portal_token(email: str, user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "account_id": "acme", "email": email, "role": "member",
              "aud": os.environ["PORTAL_JWT_AUDIENCE"], "iss": os.environ["PORTAL_JWT_ISSUER"], "iat": now, "exp": now + 300}
    return jwt.encode(claims, os.environ["PORTAL_JWT_SECRET"], algorithm="HS256")


def test_web_chat_then_portal_is_one_customer_with_one_conversation(stack: Stack, store: redis.Redis) -> None:
    email = f"dana.{uuid.uuid4().hex[:8]}@acme.example"
    context = {"product": "insights", "feature": "dashboards", "page": "/insights/d/42", "app_version": "5.2.0"}

    async def on_the_website() -> str:
        chat = WebChat(stack.rasa_url)
        await chat.open()
        try:
            assert "e-mail" in await chat.say("I already have an account, please link this chat to it")
            assert "6-digit code" in await chat.say(email)
            confirmed = await chat.say(code_sent_to(stack, email))
            assert f"{email} is confirmed" in confirmed, confirmed
            assert "idea" in (await chat.say("I have an idea for you")).lower()  # the idea form asks what it is
        finally:
            await chat.client.disconnect()
        return chat.session_id

    session_id = asyncio.run(on_the_website())
    customer = store.get(f"engage:identity:web:{session_id}")
    assert customer and store.get(f"engage:identity:email:{email}") == customer

    def portal(text: str) -> str:
        answer = requests.post(
            f"{stack.rasa_url}/webhooks/portal/webhook",
            json={"message": text, "context": context},
            headers={"Authorization": f"Bearer {portal_token(email, 'u-' + session_id[:8])}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return texts(answer.json())

    # In the portal the same customer continues: the idea form is still waiting for the idea.
    asked = portal("let us export Insights dashboards straight to PowerPoint slides")
    assert "help you or your team" in asked or "difference would it make" in asked, asked
    submitted = portal("our managers rebuild every slide by hand each week")
    assert re.search(r"IDEA-[0-9A-F]{6}", submitted), submitted

    assert store.get(f"engage:identity:portal:acme:u-{session_id[:8]}") == customer
    ideas = [e for e in log_events(store, customer, want="idea") if e.type == "idea"]
    assert len(ideas) == 1 and "PowerPoint" in ideas[0].data["summary"]
    assert ideas[0].data["context"] == context and ideas[0].channel == "portal"
    linked = [e for e in log_events(store, customer) if e.type == "identity_linked"]
    assert linked and linked[0].data["identity"] == f"email:{email}"
