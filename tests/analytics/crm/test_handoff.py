"""CRM hand-off against fake HubSpot, Salesforce and webhook servers: shapes, auth, retries, dead letters, once only."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, List

import aiohttp
import pytest
import redis.asyncio

from analytics.crm.clients import client_for, sign, verify
from analytics.crm.config import CrmConfig, CrmConfigError, Retry, load_crm_config, parse_crm_config
from analytics.crm.outbox import DEAD, OUTBOX, CrmSender, job_key
from analytics.records.store import RecordStore
from analytics.schema import CRM_FAILED, CRM_PUSHED, EVENTS_STREAM, LogEvent
from tests.analytics.support import LEAD_CUSTOMER as CUSTOMER
from tests.analytics.support import qualified_lead
from tests.fakes.crm_api import HUBSPOT_TOKEN, SALESFORCE_TOKEN, WEBHOOK_SECRET, FakeHubSpot, FakeSalesforce, FakeWebhookReceiver

FAST = Retry(max_attempts=3, first_delay=1, max_delay=60, timeout=1)


async def qualify(client: redis.asyncio.Redis, config: CrmConfig) -> RecordStore:
    store = RecordStore(client, crm_stages=config.push_stages)
    events = qualified_lead()
    await store.apply_batch([(f"{1000 + n}-0", e) for n, e in enumerate(events)])
    await store.apply_batch([(f"{1000 + n}-0", e) for n, e in enumerate(events)])  # redelivered: still one job
    return store


def config_for(provider: str, base_url: str, **extra: Any) -> CrmConfig:
    return CrmConfig(provider, ("lead", "opportunity"), FAST, base_url=base_url, **extra)


async def log_types(client: redis.asyncio.Redis) -> List[str]:
    return [LogEvent.from_fields(f).type for _, f in await client.xrange(EVENTS_STREAM)]


async def test_a_lead_reaches_hubspot_once_after_a_429_a_500_and_an_unreadable_answer(client: redis.asyncio.Redis) -> None:
    hubspot = await FakeHubSpot().start()
    try:
        config = replace(config_for("hubspot", hubspot.base_url, token=HUBSPOT_TOKEN), retry=replace(FAST, max_attempts=5))
        store = await qualify(client, config)
        assert await client.zrange(OUTBOX, 0, -1) == [f"{CUSTOMER}:lead"]
        sender = CrmSender(client, client_for(config), config, store.record)
        hubspot.fail_next(1, 429, retry_after=7)
        hubspot.fail_next(1, 500)
        async with aiohttp.ClientSession() as session:
            assert await sender.step(session, now=2e9) == 1
            job = await client.hgetall(job_key(f"{CUSTOMER}:lead"))
            assert job["attempts"] == "1" and job["last_error"].startswith("429")
            assert await client.zscore(OUTBOX, f"{CUSTOMER}:lead") == 2e9 + 7  # Retry-After beat the 1 s backoff
            assert await sender.step(session, now=2e9 + 1) == 0  # not due yet
            assert await sender.step(session, now=2e9 + 7) == 1  # 500: backoff 2 s
            hubspot.garbage = 1
            assert await sender.step(session, now=2e9 + 9) == 1  # a 200 that is an HTML page: not taken as stored
            assert "not what the CRM sends" in (await client.hgetall(job_key(f"{CUSTOMER}:lead")))["last_error"]
            assert await sender.step(session, now=2e9 + 13) == 1  # accepted
        assert await client.zcard(OUTBOX) == 0 and await client.exists(job_key(f"{CUSTOMER}:lead")) == 0
        (contact,) = hubspot.contacts.values()
        props = contact["properties"]
        assert (props["email"], props["firstname"], props["lastname"], props["company"]) == ("dana@northbeam.example", "Dana", "Whitfield", "Northbeam")
        assert (props["lifecyclestage"], props["hs_lead_status"], props["engage_customer_id"]) == ("salesqualifiedlead", "OPEN", CUSTOMER)
        assert 'Budget: $25k–$100k / year (said: "around 40k")' in props["engage_summary"]
        assert (await log_types(client)).count(CRM_PUSHED) == 1
    finally:
        await hubspot.close()


async def test_salesforce_upserts_one_lead_by_external_id_and_a_refusal_is_dead_lettered(client: redis.asyncio.Redis) -> None:
    salesforce = await FakeSalesforce().start()
    try:
        config = config_for("salesforce", salesforce.base_url, token=SALESFORCE_TOKEN, api_version="v60.0", external_id_field="Engage_Customer_Id__c")
        store = await qualify(client, config)
        sender = CrmSender(client, client_for(config), config, store.record)
        async with aiohttp.ClientSession() as session:
            await sender.step(session, now=2e9)
            client_ = client_for(config)
            record = await store.record(CUSTOMER)
            again = await client_.push(session, record, "manual")  # a second push updates the same Lead
            assert again.result.value == "sent"
        (lead,) = salesforce.leads.values()
        assert list(salesforce.leads) == [CUSTOMER]
        assert (lead["LastName"], lead["Company"], lead["Email"], lead["Title"], lead["LeadSource"]) == (
            "Whitfield", "Northbeam", "dana@northbeam.example", "Head of Operations", "Engage assistant")
        assert lead["Rating"] in ("Hot", "Warm", "Cold") and "next quarter" in lead["Description"]

        bad = replace(config, token="expired")
        await client.flushdb()
        store = await qualify(client, bad)
        sender = CrmSender(client, client_for(bad), bad, store.record)
        async with aiohttp.ClientSession() as session:
            await sender.step(session, now=2e9)
        (dead,) = [json.loads(item) for item in await client.lrange(DEAD, 0, -1)]
        assert dead["job"] == f"{CUSTOMER}:lead" and "INVALID_SESSION_ID" in dead["reason"] and "SALESFORCE_ACCESS_TOKEN" in dead["reason"]
        assert (await log_types(client)).count(CRM_FAILED) == 1 and await client.zcard(OUTBOX) == 0
    finally:
        await salesforce.close()


async def test_the_webhook_is_signed_and_a_timeout_is_retried_until_the_attempts_run_out(client: redis.asyncio.Redis) -> None:
    receiver = await FakeWebhookReceiver().start()
    try:
        config = config_for("webhook", f"{receiver.base_url}/hooks/engage", secret=WEBHOOK_SECRET)
        store = await qualify(client, config)
        sender = CrmSender(client, client_for(config), config, store.record)
        receiver.hang_next(3)
        async with aiohttp.ClientSession() as session:
            for now in (2e9, 2e9 + 1, 2e9 + 3):
                assert await sender.step(session, now=now) == 1
        (dead,) = [json.loads(item) for item in await client.lrange(DEAD, 0, -1)]
        assert dead["reason"].startswith("gave up after 3 attempts: TimeoutError")
        # The receiver may still finish a request we stopped waiting for; the delivery id keeps it to one.
        assert len(receiver.requests) == 3 and len(receiver.deliveries) <= 1

        await client.flushdb()
        store = await qualify(client, config)
        async with aiohttp.ClientSession() as session:
            await CrmSender(client, client_for(config), config, store.record).step(session, now=2e9)
        (delivery,) = receiver.deliveries.values()
        assert (delivery["type"], delivery["customer_id"], delivery["stage"]) == ("lead.qualified", CUSTOMER, "lead")
        assert delivery["said"] == {"budget": "around 40k", "timeline": "next quarter"}
    finally:
        await receiver.close()


def test_signatures_are_fresh_and_exact() -> None:
    body = b'{"a":1}'
    signature = sign("s3cret", "1780000000", body)
    assert verify("s3cret", "1780000000", body, signature, now=1780000100)
    assert not verify("s3cret", "1780000000", body + b" ", signature, now=1780000100)
    assert not verify("other", "1780000000", body, signature, now=1780000100)
    assert not verify("s3cret", "1780000000", body, signature, now=1780000000 + 301)  # replayed too late
    assert not verify("s3cret", "soon", body, signature)


def test_the_shipped_settings_turn_the_hand_off_off_and_a_provider_names_its_missing_secrets() -> None:
    assert load_crm_config(environ={}).provider == "none"
    text = "provider: salesforce\npush_stages: [lead, banana]\nsalesforce:\n  base_url_env: SF_URL\n  token_env: SF_TOKEN\n"
    with pytest.raises(CrmConfigError) as caught:
        parse_crm_config(text, "crm.yml", {"SF_URL": "https://acme.my.salesforce.com"})
    message = str(caught.value)
    assert "crm.yml:2: push_stages must list funnel stages" in message
    assert "crm.yml:5: provider salesforce needs the environment variable SF_TOKEN" in message
    config = parse_crm_config("provider: hubspot\npush_stages: [opportunity]\nhubspot:\n  token_env: HS\n", "crm.yml", {"HS": "t"})
    assert (config.provider, config.token, config.base_url, config.push_stages) == ("hubspot", "t", "https://api.hubapi.com", ("opportunity",))

