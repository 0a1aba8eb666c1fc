"""Web chat against the running stack: the Rasa widget's socket.io protocol, and the chat page in headless Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import pytest
import redis
import socketio
import yaml

from scripts.stack import Stack
from tests.e2e.conftest import eventually, log_events

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "results" / "artifacts"
SSO_ANSWER = next(
    entry["answer"].strip()
    for entry in yaml.safe_load((ROOT / "knowledge_base" / "faqs" / "security.yml").read_text())
    if entry["id"] == "security-sso-saml-setup"
)


async def widget_conversation(url: str, messages: List[str]) -> tuple[str, List[Dict[str, Any]]]:
    """Connect over a WebSocket as the Rasa widget does and collect the replies to each message."""
    client = socketio.AsyncClient(reconnection=False)
    replies: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
    confirmed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
    client.on("bot_uttered", replies.put)
    client.on("session_confirm", lambda session_id: confirmed.done() or confirmed.set_result(session_id))
    await client.connect(url, socketio_path="/socket.io", transports=["websocket"])
    try:
        await client.emit("session_request", {"session_id": None})
        session_id = await asyncio.wait_for(confirmed, 10)
        received: List[Dict[str, Any]] = []
        for text in messages:
            await client.emit("user_uttered", {"message": text, "session_id": session_id, "customData": {"page": "/pricing"}})
            received.append(await asyncio.wait_for(replies.get(), 60))
        return session_id, received
    finally:
        await client.disconnect()


def test_the_rasa_widget_protocol_reaches_the_assistant(stack: Stack, store: redis.Redis) -> None:
    session_id, replies = asyncio.run(widget_conversation(stack.rasa_url, ["How do I set up SAML single sign-on for my team?"]))
    assert SSO_ANSWER[:60] in replies[0]["text"]
    customer = store.get(f"engage:identity:web:{session_id}")
    assert customer and customer.startswith("C-")
    answered = [e for e in log_events(store, customer, want="faq_answered") if e.type == "faq_answered"]
    assert answered and answered[0].channel == "socketio" and answered[0].data["faq_id"] == "security-sso-saml-setup"


def _chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromedriver are needed for this test: run `make setup` (it installs them as root)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a browser or driver
    options = Options()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="engage-chromium-")
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=390,844",  # a phone's width
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_chat_page_answers_in_a_real_browser(stack: Stack, store: redis.Redis) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(stack.chat_page)
        eventually(lambda: browser.find_element(By.ID, "status").text == "Online", "the chat page to go online")
        field = browser.switch_to.active_element  # the page focuses the message field
        assert field.get_attribute("id") == "text"
        field.send_keys("How do I set up SAML single sign-on for my team?", Keys.ENTER)  # keyboard only
        answer = eventually(lambda: [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg.bot") if SSO_ANSWER[:40] in m.text], "the answer on the page")
        assert answer
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
        browser.save_screenshot(str(ARTIFACTS / "webchat.png"))
        session_id = browser.execute_script("return localStorage.getItem('engage.webchat.session')")

        browser.refresh()  # the session and the transcript survive a reload
        eventually(lambda: browser.find_element(By.ID, "status").text == "Online", "the chat page to go online")
        assert browser.execute_script("return localStorage.getItem('engage.webchat.session')") == session_id
        assert any(SSO_ANSWER[:40] in m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg.bot"))
        before = len(browser.find_elements(By.CSS_SELECTOR, ".msg.bot"))
        browser.find_element(By.ID, "text").send_keys("what plans do you offer?", Keys.ENTER)
        eventually(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".msg.bot")) > before, "a reply on the page")
        browser.save_screenshot(str(ARTIFACTS / "webchat-after-reload.png"))
    finally:
        browser.quit()
    customer = store.get(f"engage:identity:web:{session_id}")
    user_turns = [e for e in log_events(store, customer) if e.type == "user"]
    assert [e.text for e in user_turns] == ["How do I set up SAML single sign-on for my team?", "what plans do you offer?"]
    assert {e.channel for e in user_turns} == {"socketio"}
