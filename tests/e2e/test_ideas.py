"""Idea mining on the running stack (issue 11): three customers on WhatsApp, Telegram and the web chat
(a real socket.io client) suggest the same thing; the second and third are told others asked for
it too and their ideas count as votes; all three say yes to hearing back; a fourth, told the same,
says it is something else and their idea leaves the theme; staff mark the theme shipped with
`python -m analytics ideas status`; each requester's channel receives exactly one notification (on
WhatsApp, whose fake says the customer's 24-hour window has closed, the approved template after the
free-form text is refused with 131047), the fourth none, and marking it shipped again sends nothing more."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any, Dict, List, Optional

import redis
import socketio

from analytics.ideas.notify import OUTBOX
from analytics.ideas.themes import CONSENT, ITEMS
from scripts.stack import ROOT, VENVS, Stack
from tests.e2e.conftest import BackgroundLoop, Providers, eventually, log_events
from tests.e2e.test_messaging import Telegram, WhatsApp, body_of
from tests.fakes import telegram_api as tg
from tests.fakes import whatsapp_graph as wa

SHIPPED = "now live"


class WebChat:
    """The Rasa widget's socket.io protocol with a real client, kept connected in a background loop."""

    def __init__(self, stack: Stack) -> None:
        self.loop = BackgroundLoop()
        self.client = socketio.AsyncClient(reconnection=False)
        self.messages: List[Dict[str, Any]] = []
        self.client.on("bot_uttered", self._received)
        self.session_id = self.loop.run(self._connect(stack.rasa_url))

    async def _received(self, message: Dict[str, Any]) -> None:
        self.messages.append(message)

    async def _connect(self, url: str) -> str:
        confirmed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self.client.on("session_confirm", lambda session_id: confirmed.done() or confirmed.set_result(session_id))
        await self.client.connect(url, socketio_path="/socket.io", transports=["websocket"])
        await self.client.emit("session_request", {"session_id": None})
        return await asyncio.wait_for(confirmed, 10)

    def send(self, text: str, replies: int = 1) -> List[Dict[str, Any]]:
        before = len(self.messages)
        self.loop.run(self.client.emit("user_uttered", {"message": text, "session_id": self.session_id}))
        return eventually(lambda: self.messages[before:] if len(self.messages) >= before + replies else None, f"{replies} web chat message(s)")

    def close(self) -> None:
        self.loop.run(self.client.disconnect())
        self.loop.close()


def whatsapp_text(message: Dict[str, Any]) -> str:
    """The words of a WhatsApp message the fake accepted: a text, an interactive body or a template's parameters."""
    if message["type"] == "template":
        return " ".join(p["text"] for c in message["template"].get("components", []) for p in c.get("parameters", []))
    return body_of(message)


def items_of(store: redis.Redis, customer: str) -> List[Dict[str, Any]]:
    return [item for item in (json.loads(raw) for raw in store.hvals(ITEMS)) if item["customer"] == customer]


def applied(store: redis.Redis, customer: str) -> Dict[str, Any]:
    """The customer's idea once the analytics service has put it in a theme."""
    return eventually(lambda: items_of(store, customer), f"the idea of {customer} in a theme", timeout=90)[0]


def analytics(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), REDIS_URL=stack.effective_redis_url, HF_HUB_OFFLINE="1")
    return subprocess.run([str(VENVS / "actions" / "bin" / "python"), "-m", "analytics", *args], env=env, capture_output=True, text=True, timeout=300)


def settled(received: Any, what: str, settle: float = 4.0) -> List[Dict[str, Any]]:
    """The notifications once one has arrived and a few more seconds brought no other."""
    first = eventually(lambda: received() or None, what, timeout=90)
    time.sleep(settle)
    later = received()
    assert later[: len(first)] == first
    return later


def test_three_channels_one_theme_votes_and_one_notification_each(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    # WhatsApp: the first to ask. Plain thanks (nobody else asked yet), then the question about hearing back.
    phone = WhatsApp(stack, providers, store)
    (greeting,) = phone.send(wa.text_message(phone.number, "hi"))
    phone.send(wa.list_reply(phone.number, "/suggest_idea", "Suggest an idea"))
    phone.send(wa.text_message(phone.number, "a dark mode for the Docs editor"))
    thanks, question = phone.send(wa.text_message(phone.number, "my eyes hurt when I write at night"), replies=2)
    assert "Your reference is IDEA-" in body_of(thanks) and "Others have asked" not in body_of(thanks)
    assert "let you know here when it ships" in body_of(question) and question["type"] == "interactive"
    (yes,) = phone.send(wa.button_reply(phone.number, "/affirm", "Yes, tell me"))
    assert "I'll let you know" in body_of(yes)
    first = applied(store, phone.customer)

    # Telegram: the same idea in other words is a vote, and the customer is told so.
    user = Telegram(stack, providers, store)
    user.send(tg.text_update(user.user_id, "hi"))
    user.send(tg.callback_update(user.user_id, "/suggest_idea"))
    user.send(tg.text_update(user.user_id, "please add a dark mode to the Docs editor"))
    told, question = user.send(tg.text_update(user.user_id, "working late is hard on the eyes"), replies=2)
    assert "Others have asked for \u201c" in told["text"] and "I've added your vote" in told["text"], told
    assert [b["text"] for row in told["reply_markup"]["inline_keyboard"] for b in row] == ["It's something else"]
    user.send(tg.callback_update(user.user_id, "/affirm"))
    second = applied(store, user.customer)
    assert second["theme"] == first["theme"] and second["how"] == "vote"

    # Web chat over socket.io: the third requester, also told.
    web = WebChat(stack)
    try:
        web.send("/suggest_idea")
        web.send("dark mode for the docs editor please")
        told, question = web.send("bright screens at night hurt", replies=2)
        assert "Others have asked for" in told["text"], told
        web.send("/affirm")
        customer = str(store.get(f"engage:identity:web:{web.session_id}"))
        third = applied(store, customer)
        assert third["theme"] == first["theme"]
        requesters = [phone.customer, user.customer, customer]
        eventually(lambda: all(store.hexists(CONSENT, c) for c in requesters), "the three answers about hearing back")

        # A fourth, told the same, says it is something else: it leaves the theme, and they hear nothing of it.
        other = Telegram(stack, providers, store)
        other.send(tg.text_update(other.user_id, "hi"))
        other.send(tg.callback_update(other.user_id, "/suggest_idea"))
        other.send(tg.text_update(other.user_id, "a dark mode for the Docs editor, but only for code blocks"))
        told, _ = other.send(tg.text_update(other.user_id, "code is easier to read on dark"), replies=2)
        assert "Others have asked for" in told["text"], told
        (separated,) = other.send(tg.callback_update(other.user_id, "/idea_something_else"))
        assert "new idea of its own" in separated["text"]
        other.send(tg.callback_update(other.user_id, "/affirm"))
        moved = eventually(lambda: [i for i in items_of(store, other.customer) if i.get("separated_from")], "the idea in a theme of its own", timeout=90)[0]
        assert moved["separated_from"] == first["theme"] and moved["theme"] != first["theme"]

        # Staff mark the theme shipped: each requester hears once, on their own channel. WhatsApp
        # says the first customer's 24-hour window has closed, so they get the approved template.
        providers.graph.close_window(phone.number)
        theme = first["theme"]
        wrong = analytics(stack, "ideas", "status", "TH-99999", "shipped", "--note", "x")
        assert wrong.returncode == 2 and "no theme 'TH-99999'" in wrong.stderr
        done = analytics(stack, "ideas", "status", theme, "shipped", "--note", "Turn it on under Settings > Appearance.", "--by", "e2e-pm")
        assert done.returncode == 0, done.stderr
        sent_phone = settled(lambda: [m for m in phone.received() if SHIPPED in whatsapp_text(m)], "the WhatsApp notification")
        sent_user = settled(lambda: [m for m in user.received() if SHIPPED in m["text"]], "the Telegram notification")
        sent_web = settled(lambda: [m for m in web.messages if SHIPPED in (m.get("text") or "")], "the web chat notification")
        assert (len(sent_phone), len(sent_user), len(sent_web)) == (1, 1, 1)
        assert sent_phone[0]["type"] == "template" and sent_phone[0]["template"]["name"] == "idea_update"
        assert "\u201ca dark mode for the Docs editor\u201d" in whatsapp_text(sent_phone[0]) and "Settings > Appearance" in whatsapp_text(sent_phone[0])

        # Marked shipped again: nothing more is sent.
        again = analytics(stack, "ideas", "status", theme, "shipped", "--note", "Now on mobile too.", "--by", "e2e-pm")
        assert again.returncode == 0
        time.sleep(5)
        assert len([m for m in phone.received() if SHIPPED in whatsapp_text(m)]) == 1
        assert len([m for m in user.received() if SHIPPED in m["text"]]) == 1
        assert len([m for m in web.messages if SHIPPED in (m.get("text") or "")]) == 1
        assert not [m for m in other.received() if SHIPPED in m["text"]]
    finally:
        web.close()

    jobs = {json.loads(raw)["customer"]: json.loads(raw) for raw in store.hvals(OUTBOX) if json.loads(raw)["theme"] == theme}
    assert {c: (j["state"], j["channel"]) for c, j in jobs.items()} == {
        phone.customer: ("sent", "whatsapp"), user.customer: ("sent", "telegram"), customer: ("sent", "socketio")}
    assert "131047" in jobs[phone.customer]["detail"]["free_form_refused"]
    for who in requesters:
        notified = [e for e in log_events(store, who, want="idea_notified") if e.type == "idea_notified"]
        assert [e.data["theme"] for e in notified] == [theme]
    shown = analytics(stack, "ideas", "show", theme)
    assert shown.returncode == 0 and "(shipped)" in shown.stdout and "shipped by e2e-pm" in shown.stdout, shown.stdout + shown.stderr
