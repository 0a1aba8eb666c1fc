"""The customer directory against a real redis-server: resolve, link, merge, unlink, concurrency."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
import redis.asyncio

from analytics.customers import (
    EMAIL,
    PORTAL,
    TELEGRAM,
    WEB,
    WHATSAPP,
    CustomerDirectory,
    close,
    Identity,
    IdentityError,
)
from analytics.schema import CUSTOMERS_MERGED, EVENTS_STREAM, SOURCE_DIRECTORY, LogEvent


@pytest.fixture
async def directory(redis_url: str) -> AsyncIterator[CustomerDirectory]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield CustomerDirectory(client)
    finally:
        await close(client)


WEB_1 = Identity.of(WEB, "session-aaaa1111")
WEB_2 = Identity.of(WEB, "session-bbbb2222")
PORTAL_1 = Identity.of(PORTAL, "acme:u-17")
EMAIL_1 = Identity.of(EMAIL, "Dana@Example.com")
PHONE_1 = Identity.of(WHATSAPP, "+49 151 2345-6789")


def test_identities_are_checked_and_normalised() -> None:
    assert str(EMAIL_1) == "email:dana@example.com"
    assert str(PHONE_1) == "whatsapp:4915123456789"
    assert Identity.parse("telegram:12345") == Identity(TELEGRAM, "12345")
    for kind, value in [("fax", "1"), (EMAIL, "not-an-email"), (WHATSAPP, "012"), (WEB, "short"), (PORTAL, "no-colon"), (TELEGRAM, "-5")]:
        with pytest.raises(IdentityError):
            Identity.of(kind, value)


async def test_a_new_identity_creates_a_customer_and_finds_it_again(directory: CustomerDirectory) -> None:
    first = await directory.resolve([(WEB_1, "web_session")])
    assert first.created and first.attached == (str(WEB_1),) and first.merged_from == ()
    again = await directory.resolve([(WEB_1, "web_session")])
    assert again.customer_id == first.customer_id and not again.created and again.attached == ()
    other = await directory.resolve([(WEB_2, "web_session")])
    assert other.customer_id != first.customer_id


async def test_evidence_naming_a_known_identity_attaches_the_new_one(directory: CustomerDirectory) -> None:
    web = await directory.resolve([(WEB_1, "web_session")])
    await directory.link(web.customer_id, EMAIL_1, "email_code")
    portal = await directory.resolve([(PORTAL_1, "portal_jwt"), (EMAIL_1, "portal_jwt")])
    assert portal.customer_id == web.customer_id and portal.attached == (str(PORTAL_1),)
    linked = await directory.identities(web.customer_id)
    assert [(str(i.identity), i.evidence) for i in linked] == [
        ("web:session-aaaa1111", "web_session"),
        ("email:dana@example.com", "email_code"),
        ("portal:acme:u-17", "portal_jwt"),
    ]


async def test_joining_two_customers_keeps_the_one_active_most_recently(directory: CustomerDirectory) -> None:
    portal = await directory.resolve([(PORTAL_1, "portal_jwt"), (EMAIL_1, "portal_jwt")])
    web = await directory.resolve([(WEB_1, "web_session")])  # later: the conversation in progress
    linked = await directory.link(web.customer_id, EMAIL_1, "email_code")
    assert linked.customer_id == web.customer_id and linked.merged_from == (portal.customer_id,)
    assert await directory.owner(PORTAL_1) == web.customer_id
    assert (await directory.profile(portal.customer_id))["merged_into"] == web.customer_id
    assert (await directory.profile(web.customer_id))["merged_from"] == [portal.customer_id]
    assert await directory.identities(portal.customer_id) == []
    # Without a pinned customer, the most recently seen owner wins as well.
    phone = await directory.resolve([(PHONE_1, "whatsapp_number")])
    joined = await directory.resolve([(PHONE_1, "whatsapp_number"), (PORTAL_1, "portal_jwt")])
    assert joined.customer_id == phone.customer_id and joined.merged_from == (web.customer_id,)
    # Each merge is in the interaction log, written in the same step; plain resolutions are not.
    merges = [LogEvent.from_fields(fields) for _, fields in await directory._client.xrange(EVENTS_STREAM)]
    assert [(m.type, m.source, m.conversation_id, m.data) for m in merges] == [
        (CUSTOMERS_MERGED, SOURCE_DIRECTORY, web.customer_id, {"merged_from": [portal.customer_id]}),
        (CUSTOMERS_MERGED, SOURCE_DIRECTORY, phone.customer_id, {"merged_from": [web.customer_id]}),
    ]
    assert len({m.event_id for m in merges}) == 2 and all(m.timestamp > 0 for m in merges)


async def test_unlink_removes_one_identity_only_from_its_own_customer(directory: CustomerDirectory) -> None:
    customer = (await directory.resolve([(PORTAL_1, "portal_jwt"), (EMAIL_1, "portal_jwt")])).customer_id
    other = (await directory.resolve([(WEB_2, "web_session")])).customer_id
    assert not await directory.unlink(other, EMAIL_1)
    assert await directory.unlink(customer, EMAIL_1)
    assert not await directory.unlink(customer, EMAIL_1)  # twice: nothing left to do
    assert [str(i.identity) for i in await directory.identities(customer)] == [str(PORTAL_1)]
    fresh = await directory.resolve([(EMAIL_1, "email_code")])
    assert fresh.created and fresh.customer_id != customer


async def test_concurrent_first_messages_agree_on_one_customer(directory: CustomerDirectory) -> None:
    results = await asyncio.gather(*(directory.resolve([(PHONE_1, "whatsapp_number")]) for _ in range(20)))
    assert len({r.customer_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_bad_customer_ids_are_refused(directory: CustomerDirectory) -> None:
    for bad in ("", "C-123", "customer", "C-" + "g" * 16):
        with pytest.raises(IdentityError):
            await directory.identities(bad)
    with pytest.raises(IdentityError):
        await directory.resolve([])
