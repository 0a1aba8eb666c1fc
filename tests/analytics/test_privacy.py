"""Privacy: export everything held about a customer who used three channels, erase it, and find nothing left."""

from __future__ import annotations

import json
from typing import List

import pytest
import redis.asyncio

from analytics.crm.outbox import DEAD as CRM_DEAD
from analytics.customers import CustomerDirectory, Identity
from analytics.ideas.notify import OUTBOX, queue_notifications
from analytics.ideas.themes import CONSENT as IDEA_CONSENT
from analytics.ideas.themes import ITEMS as IDEA_ITEMS
from analytics.ideas.themes import THEMES as IDEA_THEMES
from analytics.privacy import ERASE_AFTER_SECONDS, ERASURES, PRIVACY_ERASED, erase, erase_due, export, schedule_erasure
from analytics.records.store import RecordStore
from analytics.schema import EVENTS_STREAM, HANDOVER_QUEUE, MESSAGE_DROPPED, SOURCE_CONNECTOR, LogEvent, handover_request_key
from analytics.stream.pause import ReplayLease, ReplayRunning
from tests.analytics.support import qualified_lead

EMAIL, PHONE, SESSION = "dana@northbeam.example", "4915123456789", "session-dana0001"


async def three_channel_customer(client: redis.asyncio.Redis) -> List[str]:
    """Web chat, then WhatsApp, then a confirmed e-mail that joins them; returns every id they had."""
    directory = CustomerDirectory(client)
    web = (await directory.resolve([(Identity.of("web", SESSION), "web_session")])).customer_id
    phone = (await directory.resolve([(Identity.of("whatsapp", PHONE), "whatsapp_number")])).customer_id
    await directory.link(phone, Identity.of("email", EMAIL), "email_code")
    joined = await directory.link(web, Identity.of("email", EMAIL), "email_code")
    assert joined.merged_from == (phone,)
    store = RecordStore(client)
    events = [LogEvent(e.type, web, e.source, e.channel, e.timestamp, text=e.text, intent=e.intent, data=e.data) for e in qualified_lead()]
    events.append(LogEvent("user", phone, "rasa", "whatsapp", 1_780_000_100.0, text=f"my number is {PHONE}"))
    events.append(LogEvent(MESSAGE_DROPPED, f"whatsapp:{PHONE}", SOURCE_CONNECTOR, "whatsapp", 1_780_000_200.0, text="too fast"))
    for event in events:
        await client.xadd(EVENTS_STREAM, event.to_fields())
    entries = await client.xrange(EVENTS_STREAM)
    await store.apply_batch([(entry_id, LogEvent.from_fields(fields)) for entry_id, fields in entries])
    # What Rasa, the action server and the staff keep under the customer too.
    await client.set(f"engage:tracker:{web}", json.dumps({"sender_id": web, "events": [{"event": "user", "text": f"I'm {EMAIL}"}]}))
    await client.set(f"engage:tracker:{phone}", json.dumps({"sender_id": phone, "events": []}))
    await client.zadd(HANDOVER_QUEUE, {web: 1.0})
    await client.hset(handover_request_key(web), mapping={"reason": "talk to a person", "channel": "socketio"})
    await client.hset(f"engage:otp:{web}", mapping={"email": EMAIL, "digest": "x"})
    await client.lpush(CRM_DEAD, json.dumps({"job": f"{web}:lead", "reason": "400"}))
    # Their idea in a theme somebody else asked for too (as analytics.ideas.themes keeps them).
    for event_id, customer, text in (("ev-dana", web, f"dark mode please, mail {EMAIL}"), ("ev-other", "C-00000000000000aa", "a night theme")):
        item = {"event_id": event_id, "customer": customer, "text": text, "theme": "TH-1", "vector": "AAAA"}
        await client.hset(IDEA_ITEMS, event_id, json.dumps(item))
    await client.hset(IDEA_THEMES, "TH-1", json.dumps({"id": "TH-1", "members": ["ev-dana", "ev-other"], "status": "new"}))
    # Their answer about hearing back, and a notification queued for them and for someone else.
    for name in (phone, "C-00000000000000aa"):
        await client.hset(IDEA_CONSENT, name, json.dumps({"consent": True, "channel": "whatsapp"}))
    async with client.pipeline(transaction=True) as pipe:
        await queue_notifications(pipe, {"id": "TH-1"}, {"status": "shipped", "at": 1.0, "note": ""},
                                  [{"customer": phone, "text": f"dark mode please, mail {EMAIL}"}, {"customer": "C-00000000000000aa", "text": "a night theme"}])
        await pipe.execute()
    return [web, phone]


async def everything(client: redis.asyncio.Redis) -> str:
    """Every key name and value and every stream entry, as one text to search."""
    parts: List[str] = []
    async for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = await client.type(key)
        if kind == "string":
            parts.append(str(await client.get(key)))
        elif kind == "hash":
            parts.append(json.dumps(await client.hgetall(key)))
        elif kind == "set":
            parts.extend(await client.smembers(key))
        elif kind == "zset":
            parts.extend(await client.zrange(key, 0, -1))
        elif kind == "list":
            parts.extend(await client.lrange(key, 0, -1))
        elif kind == "stream":
            parts.extend(json.dumps(fields) for _, fields in await client.xrange(key))
    return "\n".join(parts)


async def test_a_three_channel_customer_is_exported_then_erased_everywhere(client: redis.asyncio.Redis) -> None:
    ids = await three_channel_customer(client)
    secrets_ = [*ids, EMAIL, PHONE, SESSION]
    other = LogEvent("user", "C-00000000000000aa", "rasa", "socketio", 5.0, text="someone else")
    await client.xadd(EVENTS_STREAM, other.to_fields())
    before = await everything(client)
    assert all(s in before for s in secrets_)

    document = await export(client, ids[0])
    assert sorted(document["ids"]) == sorted(ids)
    assert sorted(document["identities"]) == sorted([f"web:{SESSION}", f"whatsapp:{PHONE}", f"email:{EMAIL}"])
    assert f"engage:tracker:{ids[0]}" in document["stores"] and f"engage:analytics:state:{ids[0]}" in document["stores"]
    assert len(document[EVENTS_STREAM]) == 11  # 8 of the sales conversation, the WhatsApp one, the dropped one, the merge
    assert document["crm_dead_letters"] == [{"job": f"{ids[0]}:lead", "reason": "400"}]
    assert [i["event_id"] for i in document["ideas"]] == ["ev-dana"] and "vector" not in document["ideas"][0]
    assert list(document["idea_updates_consent"]) == [ids[1]]
    assert [job["id"] for job in document["idea_notifications"]] == [f"TH-1:shipped:{ids[1]}"]

    summary = await erase(client, ids[0], by="dpo", reason="customer asked")
    assert summary["ids"] == 2 and summary["log_entries"] == 11 and summary["keys"] > 10
    after = await everything(client)
    left = [s for s in secrets_ if s in after]
    assert left == [], f"still held: {left}"
    assert "someone else" in after and "a night theme" in after  # nobody else's data went
    assert json.loads(await client.hget(IDEA_THEMES, "TH-1"))["members"] == ["ev-other"]
    assert await client.hkeys(IDEA_CONSENT) == ["C-00000000000000aa"] and await client.hkeys(OUTBOX) == ["TH-1:shipped:C-00000000000000aa"]
    assert summary["idea_requester_entries"] == 2
    (erased,) = [LogEvent.from_fields(f) for _, f in await client.xrange(EVENTS_STREAM) if f["type"] == PRIVACY_ERASED]
    assert erased.data["by"] == "dpo" and erased.data["log_entries"] == 11 and ids[0] not in json.dumps(erased.data)

    again = await erase(client, ids[0], by="dpo")
    assert (again["keys"], again["log_entries"], again["identities"]) == (0, 0, 0)


async def test_an_erasure_asked_for_in_the_chat_runs_once_it_is_due(client: redis.asyncio.Redis) -> None:
    ids = await three_channel_customer(client)
    assert await schedule_erasure(client, ids[0], now=1000.0)
    assert not await schedule_erasure(client, ids[0], now=1050.0)  # asked twice: one erasure, the first due time
    assert await erase_due(client, now=1000.0 + ERASE_AFTER_SECONDS - 1) == []  # not yet: the conversation may still be going
    replaying = ReplayLease(client)
    await replaying.acquire()  # a replay would write back the records it holds: the erasure waits for it
    assert await erase_due(client, now=1000.0 + ERASE_AFTER_SECONDS) == []
    with pytest.raises(ReplayRunning, match="erase when it has finished"):
        await erase(client, ids[0], by="sam")
    assert await client.zcard(ERASURES) == 1
    await replaying.release()
    (summary,) = await erase_due(client, now=1000.0 + ERASE_AFTER_SECONDS)
    assert summary["by"] == "the customer, in the chat" and summary["log_entries"] == 11
    assert await client.zcard(ERASURES) == 0
    assert not [s for s in (*ids, EMAIL, PHONE, SESSION) if s in await everything(client)]
