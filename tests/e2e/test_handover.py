"""Human handover on the running stack: a customer asks for a person on the web chat (headless
Chromium), an agent signs in to the staff console (a second Chromium), sees the request arrive
live, takes it, reads the handoff packet and replies; the customer's chat shows the reply, the
bot stays silent, the agent resolves, the customer answers the satisfaction question and the bot
answers again. Then the same flow on WhatsApp through the fake Graph API (the agent through the
console's HTTP API). Screenshots go to results/artifacts/."""

from __future__ import annotations

import time
import uuid
from typing import Any, Dict, List

import pytest
import redis
import requests

from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually, log_events, tracker
from tests.e2e.staff import PASSWORD, StaffSession, add_staff
from tests.e2e.test_messaging import WhatsApp
from tests.e2e.test_webchat import ARTIFACTS, SSO_ANSWER, _chromium
from tests.fakes import whatsapp_graph as wa

SCRIPT = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'


def add_agent(stack: Stack, login: str, name: str) -> None:
    add_staff(stack, login, "agent", name)


@pytest.fixture(scope="module")
def agent(stack: Stack) -> str:
    login = f"ada{uuid.uuid4().hex[:6]}"
    add_agent(stack, login, "Ada Agent")
    return login


def sign_in(browser: Any, stack: Stack, login: str) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{stack.console_url}/login")
    assert browser.switch_to.active_element.get_attribute("id") == "login"  # keyboard first
    browser.switch_to.active_element.send_keys(login, Keys.TAB)
    browser.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    eventually(lambda: browser.current_url.endswith("/queue"), "the queue page after signing in", 20)


def bot_lines(browser: Any) -> List[str]:
    from selenium.webdriver.common.by import By

    return [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg.bot")]


def text_of(browser: Any, selector: str) -> str:
    """The text of the first element `selector` names; empty when it is not there or was redrawn meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def press(browser: Any, selector: str) -> bool:
    """Press Enter on the element `selector` names (keyboard only); False when it is not there or was
    redrawn between the lookup and the key press, so `eventually` tries again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    try:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            return False
        found[0].send_keys(Keys.ENTER)
        return True
    except StaleElementReferenceException:
        return False


def test_web_chat_handover_in_two_browsers(stack: Stack, store: redis.Redis, agent: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    customer_browser = _chromium()
    agent_browser = _chromium()
    agent_browser.set_window_size(1280, 800)  # a laptop
    try:
        sign_in(agent_browser, stack, agent)

        customer_browser.get(stack.chat_page)
        eventually(lambda: customer_browser.find_element(By.ID, "status").text == "Online", "the chat page to go online")
        customer_browser.switch_to.active_element.send_keys("Why does my CSV export keep failing?", Keys.ENTER)
        eventually(lambda: bot_lines(customer_browser), "the bot's answer")
        customer_browser.find_element(By.ID, "text").send_keys("I want to talk to a person", Keys.ENTER)
        eventually(lambda: [t for t in bot_lines(customer_browser) if "support team" in t], "the handover answer")
        session_id = customer_browser.execute_script("return localStorage.getItem('engage.webchat.session')")
        customer = store.get(f"engage:identity:web:{session_id}")
        assert customer and customer.startswith("C-")

        # The request reaches the open queue page live (SSE), with what the customer said, as text.
        row_text = eventually(lambda: text_of(agent_browser, f'tr[data-conversation="{customer}"]'), "the request in the queue", 30)
        assert "I want to talk to a person" in row_text
        agent_browser.save_screenshot(str(ARTIFACTS / "console-queue.png"))
        # The live queue may redraw its rows at any moment: look the button up afresh until a press lands.
        eventually(lambda: press(agent_browser, f'tr[data-conversation="{customer}"] button.claim'), "pressing take", 30)
        eventually(lambda: f"/conversations/{customer}" in agent_browser.current_url, "the conversation page", 30)
        wants = agent_browser.find_element(By.ID, "wants").text
        assert wants == "Why does my CSV export keep failing?"
        eventually(lambda: [li for li in agent_browser.find_elements(By.CSS_SELECTOR, "#transcript li.customer") if "CSV export" in li.text],
                   "the transcript on the conversation page")
        agent_browser.save_screenshot(str(ARTIFACTS / "console-conversation.png"))
        agent_browser.set_window_size(820, 1180)  # a tablet, upright: one column, nothing off to the side
        assert agent_browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        agent_browser.save_screenshot(str(ARTIFACTS / "console-conversation-tablet.png"))
        agent_browser.set_window_size(1280, 800)

        # The customer hears the agent (name shown), on the channel they were using.
        eventually(lambda: [t for t in bot_lines(customer_browser) if "Ada Agent (support)" in t and "I'm here to help" in t], "the agent's greeting")
        reply_box = agent_browser.find_element(By.ID, "reply")
        reply_box.send_keys("Sorry about that! " + SCRIPT + " Please try the export again now.")
        reply_box.send_keys(Keys.CONTROL, Keys.ENTER)
        eventually(lambda: [t for t in bot_lines(customer_browser) if "Please try the export again now." in t], "the agent's reply in the chat")
        assert any(SCRIPT in t for t in bot_lines(customer_browser))
        assert customer_browser.execute_script("return window.pwned === undefined")

        # The bot is silent while the agent owns the conversation; the agent sees the customer live.
        before = len(bot_lines(customer_browser))
        customer_browser.find_element(By.ID, "text").send_keys("How do I set up SAML single sign-on for my team?", Keys.ENTER)
        customer_browser.find_element(By.ID, "text").send_keys("and this " + SCRIPT, Keys.ENTER)
        eventually(lambda: [li for li in agent_browser.find_elements(By.CSS_SELECTOR, "#transcript li.customer") if SCRIPT in li.text],
                   "the customer's messages on the console, live, as text", 30)
        assert [li for li in agent_browser.find_elements(By.CSS_SELECTOR, "#transcript li.customer") if "SAML" in li.text]
        assert agent_browser.execute_script("return window.pwned === undefined")
        time.sleep(3)
        assert len(bot_lines(customer_browser)) == before, bot_lines(customer_browser)[before:]
        customer_browser.save_screenshot(str(ARTIFACTS / "handover-webchat-agent.png"))

        # Resolve: back to the bot with a line that says so, then the satisfaction question.
        Select(agent_browser.find_element(By.ID, "outcome")).select_by_value("solved")
        agent_browser.find_element(By.ID, "resolve").click()
        eventually(lambda: [t for t in bot_lines(customer_browser) if "back with the Quillstack assistant" in t], "the hand-back line")
        five = eventually(lambda: [b for b in customer_browser.find_elements(By.CSS_SELECTOR, ".choices button") if b.text == "5" and b.is_enabled()],
                          "the satisfaction buttons")
        five[0].click()
        eventually(lambda: [t for t in bot_lines(customer_browser) if "great to hear" in t], "the thanks for the rating")
        customer_browser.find_element(By.ID, "text").send_keys("How do I set up SAML single sign-on for my team?", Keys.ENTER)
        eventually(lambda: [t for t in bot_lines(customer_browser) if SSO_ANSWER[:40] in t], "the bot answering again")
        customer_browser.save_screenshot(str(ARTIFACTS / "handover-webchat-after.png"))
    finally:
        customer_browser.quit()
        agent_browser.quit()

    events = log_events(store, customer, want="csat")
    by_type = {e.type: e for e in events}
    assert by_type["handover_claimed"].data["by"] == agent and by_type["handover_resolved"].data == {**by_type["handover_resolved"].data, "by": agent, "outcome": "solved"}
    agent_lines = [e for e in events if e.type == "bot" and (e.metadata.get("author") or {}).get("id") == agent]
    assert any("Please try the export again now." in e.text for e in agent_lines)
    assert all(e.metadata["author"]["name"] == "Ada Agent" for e in agent_lines)
    assert by_type["csat"].data["score"] == 5 and by_type["csat"].data["agent"]["id"] == agent
    silent = [e for e in events if e.type == "user" and "SAML" in e.text]
    assert len(silent) == 2  # both reached the log; only the second got an answer
    assert not [e for e in events if e.type == "reply_failed"]
    assert store.zscore("engage:handover:queue", customer) is None and not store.exists(f"engage:handover:request:{customer}")


class Console(StaffSession):
    """An agent on the console's HTTP API (what the page's script does); an agent lands on the queue."""

    def __init__(self, stack: Stack, login: str) -> None:
        super().__init__(stack, login)
        assert self.answer.url.endswith("/queue"), self.answer.url

    def queue(self) -> Dict[str, Any]:
        return self.http.get(f"{self.base}/api/queue", timeout=10).json()


def test_whatsapp_handover_through_the_fake_graph_api(stack: Stack, providers: Providers, store: redis.Redis, agent: str) -> None:
    phone = WhatsApp(stack, providers, store)
    phone.send(wa.text_message(phone.number, "I need to talk to a real person about my invoice"))
    customer = phone.customer
    console = Console(stack, agent)
    waiting = eventually(lambda: [w for t in console.queue()["teams"] for w in t["waiting"] if w["conversation_id"] == customer], "the WhatsApp request in the queue")
    assert waiting[0]["channel"] == "whatsapp" and "invoice" in waiting[0]["reason"]

    before = len(phone.received())
    claimed = console.post("/api/claim", {"conversation_id": customer, "team": "support"})
    assert claimed.status_code == 200 and claimed.json()["intro"]["status"] == "delivered", claimed.text
    replied = console.post(f"/api/conversations/{customer}/reply", {"text": "Hi, I can see invoice INV-42; fixing it now."})
    assert replied.status_code == 200 and replied.json() == {"status": "delivered", "channel": "whatsapp", "reason": ""}
    texts = [m["text"]["body"] for m in eventually(lambda: phone.received()[before:] if len(phone.received()) >= before + 2 else None, "the agent's messages")]
    assert "Ada Agent" in texts[0] and texts[1] == "Hi, I can see invoice INV-42; fixing it now."

    # Silent while owned; a second agent cannot answer it.
    phone.post(wa.text_message(phone.number, "thanks, what plans do you offer?"))
    eventually(lambda: "thanks, what plans do you offer?" in [e.get("text") for e in tracker(stack, customer)["events"] if e["event"] == "user"], "the message in the tracker")
    time.sleep(2)
    assert len(phone.received()) == before + 2
    other = f"bob{uuid.uuid4().hex[:6]}"
    add_agent(stack, other, "Bob Agent")
    refused = Console(stack, other).post(f"/api/conversations/{customer}/reply", {"text": "me too"})
    assert refused.status_code == 403 and refused.json()["error"] == "not_owner"

    # The provider refuses: the agent is told why, and nothing lands in the tracker.
    providers.graph.fail_next(4, status=500)
    failed = console.post(f"/api/conversations/{customer}/reply", {"text": "This one will not arrive."})
    assert failed.status_code == 502 and "Not delivered" in failed.json()["message"] and "500" in failed.json()["message"]
    assert "This one will not arrive." not in [e.get("text") for e in tracker(stack, customer)["events"] if e["event"] == "bot"]

    resolved = console.post(f"/api/conversations/{customer}/resolve", {"outcome": "solved"})
    assert resolved.status_code == 200 and resolved.json()["csat"]["status"] == "delivered", resolved.text
    csat = eventually(lambda: [m for m in phone.received() if m.get("type") == "interactive"], "the satisfaction question as a WhatsApp list")
    rows = [row["id"] for section in csat[-1]["interactive"]["action"]["sections"] for row in section["rows"]]
    assert len(rows) == 5
    thanks = phone.send(wa.list_reply(phone.number, rows[3], "4"))
    assert "glad we could help" in thanks[0]["text"]["body"]
    assert [e.data["score"] for e in log_events(store, customer, want="csat") if e.type == "csat"] == [4]


def test_telegram_handover_transfer_and_resolve(stack: Stack, providers: Providers, store: redis.Redis, agent: str) -> None:
    from tests.e2e.test_messaging import Telegram
    from tests.fakes import telegram_api as tg

    user = Telegram(stack, providers, store)
    user.send(tg.text_update(user.user_id, "please let me speak to a human"))
    customer = user.customer
    ada = Console(stack, agent)
    eventually(lambda: [w for t in ada.queue()["teams"] for w in t["waiting"] if w["conversation_id"] == customer], "the Telegram request in the queue")
    assert ada.post("/api/claim", {"conversation_id": customer, "team": "support"}).status_code == 200

    # Handed to a colleague, who answers and resolves; the first agent can no longer answer.
    other = f"cy{uuid.uuid4().hex[:6]}"
    add_agent(stack, other, "Cy Colleague")
    moved = ada.post(f"/api/conversations/{customer}/transfer", {"to_agent": other})
    assert moved.status_code == 200, moved.text
    assert ada.post(f"/api/conversations/{customer}/reply", {"text": "still me"}).status_code == 403
    cy = Console(stack, other)
    before = len(user.received())
    assert cy.post(f"/api/conversations/{customer}/reply", {"text": "Cy here, I'll take it from here."}).json()["status"] == "delivered"
    assert eventually(lambda: user.received()[before:], "Cy's reply on Telegram")[0]["text"] == "Cy here, I'll take it from here."
    assert cy.post(f"/api/conversations/{customer}/notes", {"text": "customer on the Team plan"}).status_code == 200
    # Canned answers: the FAQ index, searched from the reply box.
    canned = cy.http.get(f"{cy.base}/api/canned", params={"q": "can we log in with Okta?"}, timeout=120)
    assert canned.status_code == 200, canned.text
    assert canned.json()["answers"][0]["id"] == "security-sso-saml-setup"

    assert cy.post(f"/api/conversations/{customer}/resolve", {"outcome": "follow_up"}).status_code == 200
    question = eventually(lambda: [m for m in user.received() if "reply_markup" in m and "how happy" in m["text"]], "the satisfaction question on Telegram")
    buttons = {b["text"]: b["callback_data"] for row in question[-1]["reply_markup"]["inline_keyboard"] for b in row}
    assert sorted(buttons) == ["1", "2", "3", "4", "5"]
    thanks = user.send(tg.callback_update(user.user_id, buttons["2"]))
    assert "do better" in thanks[0]["text"]
    events = log_events(store, customer, want="csat")
    staff = [(e.type, e.data.get("by")) for e in events if e.source == "staff"]
    assert staff == [("handover_claimed", agent), ("handover_transferred", agent), ("staff_note", other), ("handover_resolved", other)]
    assert [e.data for e in events if e.type == "csat"][0]["score"] == 2


def test_chatwoot_bridge_hands_over_to_chatwoots_people(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    from tests.fakes import chatwoot_api as cw

    chatwoot, account, conversation = providers.chatwoot, 1, int(time.time() * 1000) % 10**9
    url = f"{stack.rasa_url}/webhooks/chatwoot/webhook?token={cw.WEBHOOK_TOKEN}"

    def say(text: str, status: str = "pending") -> None:
        answer = requests.post(url, json=cw.message_created(account, conversation, text, status=status), timeout=30)
        assert answer.status_code == 200, answer.text

    say("How do I set up SAML single sign-on for my team?")
    answer = eventually(lambda: chatwoot.to(account, conversation), "the bot's answer in Chatwoot")
    assert "SAML" in answer[0]["content"]
    say("I want to talk to a person")
    eventually(lambda: chatwoot.status.get((account, conversation)) == "open", "the conversation handed to Chatwoot's agents")
    sender = f"chatwoot:{account}:{conversation}"
    assert store.zscore("engage:handover:queue", sender) is None  # not in Engage's own console
    replies = len(chatwoot.to(account, conversation))
    say("thanks, waiting for Dana", status="open")  # a person has it now: the bot stays silent
    time.sleep(2)
    assert len(chatwoot.to(account, conversation)) == replies
    assert [e.type for e in log_events(store, sender, want="handover_requested")].count("handover_requested") == 1


def test_no_one_available_opens_a_ticket_and_keeps_how_to_reach_the_customer(stack: Stack, store: redis.Redis, chat: Any, sender: str) -> None:
    # The e2e settings keep the support team out of hours (tests/e2e/conftest.py console_config_for).
    texts = [r.get("text", "") for r in chat(sender, "I want to talk to a real person please")]
    assert any("isn't available right now" in t for t in texts) and any("where can we reach you" in t for t in texts), texts
    saved = [r.get("text", "") for r in chat(sender, "sure, dana.fox@acme.example")]
    assert any("we'll reach you at dana.fox@acme.example" in t for t in saved), saved
    request = store.hgetall(f"engage:handover:request:{sender}")
    assert (request["ticket"], request["contact"], request["trigger"]) == ("1", "dana.fox@acme.example", "asked_for_person")
    [logged] = [e for e in log_events(store, sender, want="handover_contact") if e.type == "handover_contact"]
    assert logged.data == {"kind": "email"}
    # The bot carries on afterwards (the form is done).
    answer = [r.get("text", "") for r in chat(sender, "How do I set up SAML single sign-on for my team?")]
    assert any(SSO_ANSWER[:40] in t for t in answer), answer


def test_a_handover_the_bot_raises_out_of_hours_asks_how_to_reach_the_customer_too(stack: Stack, store: redis.Redis, chat: Any, sender: str) -> None:
    # Repeated negative feedback (console/config.yml triggers) with support out of hours: a ticket
    # and the same contact question as "I want a person" (actions/escalation.py).
    first = [r.get("text", "") for r in chat(sender, "the new sidebar is really confusing")]
    assert any("report it as a problem" in t for t in first), first  # one complaint: no person yet
    texts = [r.get("text", "") for r in chat(sender, "search in Docs is so slow it's unusable")]
    assert any("isn't available right now" in t for t in texts) and any("where can we reach you" in t for t in texts), texts
    assert not any("report it as a problem" in t for t in texts), texts
    saved = [r.get("text", "") for r in chat(sender, "+49 30 1234567")]
    assert any("we'll reach you at +49301234567" in t for t in saved), saved
    request = store.hgetall(f"engage:handover:request:{sender}")
    assert (request["ticket"], request["contact"], request["trigger"]) == ("1", "+49301234567", "negative_feedback")
    [logged] = [e for e in log_events(store, sender, want="handover_contact") if e.type == "handover_contact"]
    assert logged.data == {"kind": "phone"}
    answer = [r.get("text", "") for r in chat(sender, "How do I set up SAML single sign-on for my team?")]
    assert any(SSO_ANSWER[:40] in t for t in answer), answer


def test_two_misunderstandings_out_of_hours_ask_how_to_reach_the_customer(stack: Stack, store: redis.Redis, chat: Any, sender: str) -> None:
    # Two fallbacks in a row (triggers.misses_in_a_row): the second is not reverted when the contact
    # form follows, so the form reads the next message, not the one before, as the answer.
    chat(sender, "blorp zzkx")
    texts = [r.get("text", "") for r in chat(sender, "qwpoeiru zxmv")]
    assert any("bringing in a person" in t for t in texts) and any("where can we reach you" in t for t in texts), texts
    saved = [r.get("text", "") for r in chat(sender, "dana.fox@acme.example")]
    assert any("we'll reach you at dana.fox@acme.example" in t for t in saved), saved
    request = store.hgetall(f"engage:handover:request:{sender}")
    assert (request["ticket"], request["contact"], request["trigger"]) == ("1", "dana.fox@acme.example", "misses")
    answer = [r.get("text", "") for r in chat(sender, "How do I set up SAML single sign-on for my team?")]
    assert any(SSO_ANSWER[:40] in t for t in answer), answer
