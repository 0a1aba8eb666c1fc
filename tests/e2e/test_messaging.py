"""WhatsApp and Telegram against the running stack: webhooks signed as the providers sign them
reach the real Rasa server and action server, and the replies arrive at the fake Graph API and
the fake Bot API, which check them against the documented shapes."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Dict, List, Optional

import redis
import requests

from analytics.customers import CUSTOMER_ID
from connectors.messages import TEXT_ONLY
from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually, log_events, tracker
from tests.fakes import telegram_api as tg
from tests.fakes import whatsapp_graph as wa

SSO_QUESTION = "how can I set up SAML single sign-on for my team?"
IDEA_PROMPT = "idea"  # the idea form asks for the idea first
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # connectors.telegram needs Rasa, not in this runtime


def user_texts(stack: Stack, customer: str) -> List[str]:
    return [e.get("text") for e in tracker(stack, customer)["events"] if e["event"] == "user"]


class Messenger:
    """One customer on a messaging app: posts webhooks as the provider does and reads what the
    fake provider API received for them."""

    channel = ""  # the channel name: webhook path and identity kind

    def __init__(self, stack: Stack, store: redis.Redis, address: str) -> None:
        self.stack, self.store, self.address = stack, store, address
        self.url = f"{stack.rasa_url}/webhooks/{self.channel}/webhook"

    def post(self, payload: Dict[str, Any]) -> requests.Response:
        raise NotImplementedError

    def received(self) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def unsigned(self, payload: Dict[str, Any]) -> requests.Response:
        """The payload without the provider's signature or secret header."""
        return requests.post(self.url, data=json.dumps(payload), headers={"Content-Type": "application/json"}, timeout=10)

    def send(self, payload: Dict[str, Any], replies: int = 1) -> List[Dict[str, Any]]:
        """Post `payload`; the messages sent to this customer since, once there are `replies` more."""
        before = len(self.received())
        answer = self.post(payload)
        assert answer.status_code == 200, answer.text
        return eventually(lambda: self.received()[before:] if len(self.received()) >= before + replies else None,
                          f"{replies} {self.channel} message(s) to {self.address}")

    @property
    def customer(self) -> str:
        return str(self.store.get(f"engage:identity:{self.channel}:{self.address}") or "")


# --- WhatsApp ------------------------------------------------------------------------------------


class WhatsApp(Messenger):
    channel = "whatsapp"

    def __init__(self, stack: Stack, providers: Providers, store: redis.Redis) -> None:
        super().__init__(stack, store, f"49151{random.randrange(10**7, 10**8)}")
        self.graph = providers.graph
        self.number = self.address

    def post(self, payload: Dict[str, Any], app_secret: str = wa.APP_SECRET) -> requests.Response:
        body, headers = wa.signed(payload, app_secret)
        return requests.post(self.url, data=body, headers=headers, timeout=30)

    def received(self) -> List[Dict[str, Any]]:
        return [m for m in list(self.graph.sent) if m["to"] == self.number]


def body_of(message: Dict[str, Any]) -> str:
    return message["text"]["body"] if message["type"] == "text" else message["interactive"]["body"]["text"]


def test_whatsapp_verification_challenge(stack: Stack) -> None:
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    params = {"hub.mode": "subscribe", "hub.verify_token": wa.VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = requests.get(url, params=params, timeout=10)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert requests.get(url, params={**params, "hub.verify_token": "guess"}, timeout=10).status_code == 403


def test_whatsapp_greeting_list_and_a_chosen_row_open_the_idea_form(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    (greeting,) = phone.send(wa.text_message(phone.number, "hi"))
    assert greeting["type"] == "interactive" and greeting["interactive"]["type"] == "list"
    rows = {row["title"]: row["id"] for row in greeting["interactive"]["action"]["sections"][0]["rows"]}
    assert rows["Suggest an idea"] == "/suggest_idea", rows

    (asked,) = phone.send(wa.list_reply(phone.number, rows["Suggest an idea"], "Suggest an idea"))
    assert IDEA_PROMPT in body_of(asked).lower(), asked

    customer = phone.customer
    assert CUSTOMER_ID.match(customer)
    assert user_texts(stack, customer) == ["hi", "/suggest_idea"]
    events = log_events(store, customer)
    assert {e.channel for e in events if e.type == "user"} == {"whatsapp"}


def test_whatsapp_faq_answer_and_a_redelivered_webhook_is_answered_once(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    question = wa.text_message(phone.number, SSO_QUESTION)
    answers = phone.send(question)
    assert "SAML" in body_of(answers[0]), answers
    customer = phone.customer
    answered = [e for e in log_events(store, customer, want="faq_answered") if e.type == "faq_answered"]
    assert [e.data["faq_id"] for e in answered] == ["security-sso-saml-setup"]

    sent = len(phone.received())
    assert phone.post(question).status_code == 200  # Meta redelivers when unsure we got it
    (later,) = phone.send(wa.text_message(phone.number, "thanks"))
    assert "SAML" not in body_of(later), later  # the answer to "thanks", not a second answer
    assert len(phone.received()) == sent + 1
    assert user_texts(stack, customer) == [SSO_QUESTION, "thanks"]


def test_whatsapp_refuses_bad_signatures_and_answers_media_with_text_only(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    assert phone.post(wa.text_message(phone.number, "hi"), app_secret="not-the-app-secret").status_code == 403
    assert phone.unsigned(wa.text_message(phone.number, "hi")).status_code == 401
    assert not phone.customer and not phone.received()  # nothing reached Rasa or the directory

    (reply,) = phone.send(wa.image_message(phone.number))
    assert body_of(reply) == TEXT_ONLY
    refused = [e for e in log_events(store, phone.customer, want="unsupported_message") if e.type == "unsupported_message"]
    assert len(refused) == 1 and refused[0].channel == "whatsapp"


# --- Telegram ------------------------------------------------------------------------------------


class Telegram(Messenger):
    channel = "telegram"

    def __init__(self, stack: Stack, providers: Providers, store: redis.Redis) -> None:
        self.user_id = random.randrange(10**8, 10**9)
        super().__init__(stack, store, str(self.user_id))
        self.api = providers.telegram

    def post(self, update: Dict[str, Any], secret: Optional[str] = None) -> requests.Response:
        secret = os.environ["TELEGRAM_WEBHOOK_SECRET"] if secret is None else secret
        headers = {"Content-Type": "application/json", SECRET_HEADER: secret}
        return requests.post(self.url, data=tg.encode(update), headers=headers, timeout=30)

    def received(self) -> List[Dict[str, Any]]:
        return [m for m in list(self.api.messages) if m["chat_id"] == self.user_id]


def test_telegram_inline_keyboard_and_a_pressed_button_open_the_idea_form(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    user = Telegram(stack, providers, store)
    (greeting,) = user.send(tg.text_update(user.user_id, "hi"))
    buttons = {b["text"]: b["callback_data"] for row in greeting["reply_markup"]["inline_keyboard"] for b in row}
    assert buttons["Suggest an idea"] == "/suggest_idea", buttons

    query_id = "4000000000000123"
    (asked,) = user.send(tg.callback_update(user.user_id, buttons["Suggest an idea"], query_id=query_id))
    assert IDEA_PROMPT in asked["text"].lower(), asked
    assert query_id in [a["callback_query_id"] for a in providers.telegram.succeeded("answerCallbackQuery")]
    assert user_texts(stack, user.customer) == ["hi", "/suggest_idea"]


def test_telegram_faq_answer_and_a_repeated_update_is_handled_once(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    user = Telegram(stack, providers, store)
    update = tg.text_update(user.user_id, SSO_QUESTION)
    (answer,) = user.send(update)
    assert "SAML" in answer["text"], answer
    assert user.post(update).status_code == 200  # Telegram retries an update it thinks failed
    user.send(tg.text_update(user.user_id, "thanks"))
    assert user_texts(stack, user.customer) == [SSO_QUESTION, "thanks"]
    assert len(user.received()) == 2


def test_telegram_refuses_a_wrong_secret_and_answers_stickers_with_text_only(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    user = Telegram(stack, providers, store)
    assert user.post(tg.text_update(user.user_id, "hi"), secret="guess").status_code == 403
    assert user.unsigned(tg.text_update(user.user_id, "hi")).status_code == 401
    assert not user.customer and not user.received()

    (reply,) = user.send(tg.sticker_update(user.user_id))
    assert reply["text"] == TEXT_ONLY
    refused = [e for e in log_events(store, user.customer, want="unsupported_message") if e.type == "unsupported_message"]
    assert len(refused) == 1 and refused[0].channel == "telegram"
