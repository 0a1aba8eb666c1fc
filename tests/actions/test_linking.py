"""E-mail linking: one-time codes on a real Redis, the form's validation, and the link itself."""

from __future__ import annotations

from typing import Any, AsyncIterator, List, Optional, Tuple

import pytest
import redis.asyncio
from rasa_sdk.executor import CollectingDispatcher

from actions.clients.mailer import LogMailer, MailerError, load_mailer
from actions.clients.otp import PROOF_TTL_SECONDS, CodeCheck, OneTimeCodes, proof_key
from actions.constants import LINK_CODE, LINK_EMAIL
from actions.linking import NOT_AN_EMAIL, NOT_HERE, START_AGAIN, VERIFIED, ActionLinkAccount, ValidateLinkForm
from analytics.customers import CustomerDirectory, Identity, close
from analytics.schema import IDENTITY_LINKED
from tests.actions.conftest import EventLog, make_tracker


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: List[Tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))

    def last_code(self) -> str:
        return self.sent[-1][2].split("Your code is ")[1][:6]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await close(connection)


async def customer(client: redis.asyncio.Redis, session: str = "session-aaaa1111") -> str:
    return (await CustomerDirectory(client).resolve([(Identity.of("web", session), "web_session")])).customer_id


async def test_codes_are_single_use_and_locked_after_too_many_tries(client: redis.asyncio.Redis) -> None:
    codes = OneTimeCodes(client, max_attempts=3)
    code = await codes.issue("C-0000000000000001", "dana@acme.example")
    assert len(code) == 6 and code.isdigit()
    assert (await client.hgetall("engage:otp:C-0000000000000001"))["digest"] != code  # only a hash is kept
    wrong = "000000" if code != "000000" else "111111"
    first = await codes.check("C-0000000000000001", wrong)
    assert (first.outcome, first.tries_left) == (CodeCheck.WRONG, 2)
    verified = await codes.check("C-0000000000000001", code)
    assert (verified.outcome, verified.email) == (CodeCheck.VERIFIED, "dana@acme.example")
    assert (await codes.check("C-0000000000000001", code)).outcome is CodeCheck.EXPIRED  # used up
    code = await codes.issue("C-0000000000000001", "dana@acme.example")
    outcomes = [(await codes.check("C-0000000000000001", wrong)).outcome for _ in range(3)]
    assert outcomes == [CodeCheck.WRONG, CodeCheck.WRONG, CodeCheck.LOCKED]
    assert (await codes.check("C-0000000000000001", code)).outcome is CodeCheck.EXPIRED  # the right code no longer works
    assert await client.exists("engage:otp:C-0000000000000001") == 0


async def test_the_form_sends_a_code_and_accepts_it(client: redis.asyncio.Redis) -> None:
    sender = await customer(client)
    mailer = RecordingMailer()
    form = ValidateLinkForm(codes=OneTimeCodes(client), mailer=mailer)
    dispatcher = CollectingDispatcher()
    assert await form.validate_link_email("hmm, not sure", dispatcher, make_tracker("x", sender_id=sender), {}) == {LINK_EMAIL: None}
    assert dispatcher.messages[-1]["text"] == NOT_AN_EMAIL and mailer.sent == []
    tracker = make_tracker("it's Dana@Acme.example thanks", sender_id=sender)
    assert await form.validate_link_email("it's Dana@Acme.example thanks", dispatcher, tracker, {}) == {LINK_EMAIL: "dana@acme.example"}
    (to, subject, _), = mailer.sent
    assert to == "dana@acme.example" and "code" in subject
    slots = {LINK_EMAIL: "dana@acme.example"}
    wrong = await form.validate_link_code("123 456" if mailer.last_code() != "123456" else "654321", dispatcher, make_tracker("x", sender_id=sender, slots=slots), {})
    assert wrong == {LINK_CODE: None} and "tries left" in dispatcher.messages[-1]["text"]
    right = await form.validate_link_code(f"code: {mailer.last_code()}", dispatcher, make_tracker("x", sender_id=sender, slots=slots), {})
    assert right == {LINK_CODE: VERIFIED}
    again = await form.validate_link_code(mailer.last_code(), dispatcher, make_tracker("x", sender_id=sender, slots=slots), {})
    assert again == {LINK_EMAIL: None, LINK_CODE: None} and dispatcher.messages[-1]["text"] == START_AGAIN


async def test_a_conversation_that_is_not_a_customer_cannot_link(client: redis.asyncio.Redis) -> None:
    dispatcher = CollectingDispatcher()
    form = ValidateLinkForm(codes=OneTimeCodes(client), mailer=RecordingMailer())
    assert await form.validate_link_email("dana@acme.example", dispatcher, make_tracker("x", sender_id="rest-user"), {}) == {LINK_EMAIL: None}
    assert dispatcher.messages[-1]["text"] == NOT_HERE


async def confirm(client: redis.asyncio.Redis, sender: str, email: str, codes: Optional[OneTimeCodes] = None) -> None:
    """Run the form's code check as the customer would: a code sent to `email`, typed back right."""
    mailer = RecordingMailer()
    form = ValidateLinkForm(codes=codes or OneTimeCodes(client), mailer=mailer)
    dispatcher = CollectingDispatcher()
    assert await form.validate_link_email(email, dispatcher, make_tracker(email, sender_id=sender), {}) == {LINK_EMAIL: email}
    slots = {LINK_EMAIL: email}
    assert await form.validate_link_code(mailer.last_code(), dispatcher, make_tracker("x", sender_id=sender, slots=slots), {}) == {LINK_CODE: VERIFIED}


def link_tracker(sender: str, email: str) -> Any:
    return make_tracker("123456", sender_id=sender, slots={LINK_EMAIL: email, LINK_CODE: VERIFIED})


async def test_linking_joins_the_customer_who_already_had_the_address(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    directory = CustomerDirectory(client)
    portal = (await directory.resolve([(Identity.of("portal", "acme:u-1"), "portal_jwt"), (Identity.of("email", "dana@acme.example"), "portal_jwt")])).customer_id
    web = await customer(client)
    await confirm(client, web, "dana@acme.example")
    dispatcher = CollectingDispatcher()
    action = ActionLinkAccount(directory=directory, writer=event_log.writer, codes=OneTimeCodes(client))
    events = await action.run(dispatcher, link_tracker(web, "dana@acme.example"), {})
    assert {e["name"]: e["value"] for e in events} == {LINK_EMAIL: None, LINK_CODE: None}
    assert "dana@acme.example is confirmed" in dispatcher.messages[-1]["text"]
    assert await directory.owner(Identity.of("portal", "acme:u-1")) == web  # the portal now continues this conversation
    (record,) = await event_log.records(IDENTITY_LINKED)
    assert record.conversation_id == web and record.data["merged_from"] == [portal]


async def test_an_unverified_code_links_nothing(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    directory = CustomerDirectory(client)
    web = await customer(client)
    tracker = make_tracker("x", sender_id=web, slots={LINK_EMAIL: "dana@acme.example", LINK_CODE: "123456"})
    dispatcher = CollectingDispatcher()
    await ActionLinkAccount(directory=directory, writer=event_log.writer, codes=OneTimeCodes(client)).run(dispatcher, tracker, {})
    assert "couldn't confirm" in dispatcher.messages[-1]["text"]
    assert await directory.owner(Identity.of("email", "dana@acme.example")) is None


async def test_a_slot_that_says_verified_is_no_proof(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    """The reported attack: a tracker written by the caller, claiming a checked code for the victim."""
    directory = CustomerDirectory(client)
    victim = await customer(client, "session-victim01")
    dispatcher = CollectingDispatcher()
    action = ActionLinkAccount(directory=directory, writer=event_log.writer, codes=OneTimeCodes(client))
    await action.run(dispatcher, link_tracker(victim, "attacker@evil.example"), {})
    assert "couldn't confirm" in dispatcher.messages[-1]["text"]
    assert await directory.owner(Identity.of("email", "attacker@evil.example")) is None
    assert await event_log.records(IDENTITY_LINKED) == []


async def test_a_proof_links_its_own_address_in_its_own_conversation_once(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    directory = CustomerDirectory(client)
    codes = OneTimeCodes(client)
    dana = await customer(client, "session-dana0001")
    other = await customer(client, "session-other001")
    await confirm(client, dana, "dana@acme.example", codes)
    key = proof_key(dana, "dana@acme.example")
    assert 0 < await client.ttl(key) <= PROOF_TTL_SECONDS  # short-lived
    action = ActionLinkAccount(directory=directory, writer=event_log.writer, codes=codes)
    # Not for another address, nor for another customer.
    await action.run(CollectingDispatcher(), link_tracker(dana, "eve@evil.example"), {})
    await action.run(CollectingDispatcher(), link_tracker(other, "dana@acme.example"), {})
    assert await directory.owner(Identity.of("email", "eve@evil.example")) is None
    assert await directory.owner(Identity.of("email", "dana@acme.example")) is None
    # Its own, once.
    await action.run(CollectingDispatcher(), link_tracker(dana, "dana@acme.example"), {})
    assert await directory.owner(Identity.of("email", "dana@acme.example")) == dana
    assert await client.exists(key) == 0
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, link_tracker(dana, "dana@acme.example"), {})
    assert "couldn't confirm" in dispatcher.messages[-1]["text"]
    assert len(await event_log.records(IDENTITY_LINKED)) == 1


def test_the_mailer_is_pluggable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGE_MAILER", raising=False)
    assert isinstance(load_mailer(), LogMailer)
    monkeypatch.setenv("ENGAGE_MAILER", "tests.actions.test_linking:RecordingMailer")
    assert isinstance(load_mailer(), RecordingMailer)
    monkeypatch.setenv("ENGAGE_MAILER", "no.such.module:Mailer")
    with pytest.raises(MailerError, match="package.module:Class"):
        load_mailer()


async def test_the_log_mailer_writes_the_message_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    await LogMailer().send("dana@acme.example", "Your code", "Your code is 123456.")
    assert "dana@acme.example" in caplog.text and "123456" in caplog.text


async def test_the_shared_client_survives_a_redis_restart(redis_server, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from actions.clients import redis_client

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(redis_client, "_shared", None)
    try:
        codes = OneTimeCodes(redis_client.shared_client())
        await codes.issue("C-00000000000000aa", "dana@acme.example")
        redis_server.restart()
        assert (await codes.check("C-00000000000000aa", "000000")).outcome in (CodeCheck.WRONG, CodeCheck.VERIFIED)
    finally:
        await redis_client.close_shared_client()
