"""HandoverStore against a real redis-server: exclusive claims, transfers, finishing, and the log entries."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import pytest

from analytics.schema import EVENTS_STREAM, HANDOVER_QUEUE, LogEvent, handover_request_key
from console.errors import Refused
from console.handover.store import HandoverStore, owned_key
from console.users import StaffUser

ADA = StaffUser("ada", "Ada", "agent", ("support",))
BOB = StaffUser("bob", "Bob", "agent", ("support",))
SAM = StaffUser("sam", "Sam", "sales", ("sales",))


async def waiting(client: Any, conversation_id: str, at: float, **fields: str) -> None:
    await client.zadd(HANDOVER_QUEUE, {conversation_id: at})
    await client.hset(handover_request_key(conversation_id), mapping={"requested_at": repr(at), "channel": "socketio", "reason": "a person please", **fields})


async def log(client: Any) -> List[LogEvent]:
    return [LogEvent.from_fields(fields) for _, fields in await client.xrange(EVENTS_STREAM)]


async def test_two_agents_racing_for_one_conversation_one_wins(client: Any) -> None:
    for round_ in range(20):
        conversation = f"C-{round_:016x}"
        await waiting(client, conversation, 100.0 + round_)
        stores = [HandoverStore(client), HandoverStore(client)]
        results = await asyncio.gather(stores[0].claim(ADA, conversation, "support", 50), stores[1].claim(BOB, conversation, "support", 50),
                                       return_exceptions=True)
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Refused)]
        assert len(winners) == 1 and len(losers) == 1 and losers[0].code == "taken", results
        owner = winners[0].owner
        assert await client.sismember(owned_key(owner), conversation)
        assert not await client.sismember(owned_key("bob" if owner == "ada" else "ada"), conversation)
        assert await client.zscore(HANDOVER_QUEUE, conversation) is None
    claims = [e for e in await log(client) if e.type == "handover_claimed"]
    assert len(claims) == 20 and all(e.source == "staff" and e.data["by"] in ("ada", "bob") for e in claims)


async def test_queue_per_team_tickets_first_then_longest_waiting(client: Any) -> None:
    store = HandoverStore(client)
    await waiting(client, "C-0000000000000001", 300.0)
    await waiting(client, "C-0000000000000002", 100.0)
    await waiting(client, "C-0000000000000003", 200.0, team="sales", trigger="sales_ready")
    await waiting(client, "C-0000000000000004", 400.0, ticket="1", contact="dana@acme.example")
    support = await store.waiting(["support"])
    assert [h.conversation_id for h in support] == ["C-0000000000000004", "C-0000000000000002", "C-0000000000000001"]
    assert [h.conversation_id for h in await store.waiting(["sales"])] == ["C-0000000000000003"]
    assert (await store.waiting(["sales"]))[0].trigger == "sales_ready"


async def test_wrong_team_limit_and_moved_are_refused_and_change_nothing(client: Any) -> None:
    store = HandoverStore(client)
    await waiting(client, "C-00000000000000a1", 1.0, team="sales")
    with pytest.raises(Refused) as refused:
        await store.claim(ADA, "C-00000000000000a1", "sales", 3)
    assert refused.value.status == 403
    with pytest.raises(Refused) as refused:
        await store.claim(SAM, "C-00000000000000a1", "support", 3)  # Sam saw it under the wrong team
    assert refused.value.code in ("wrong_team", "moved")
    for n in range(2):
        await waiting(client, f"C-00000000000000b{n}", 2.0 + n)
        await store.claim(ADA, f"C-00000000000000b{n}", "support", 2)
    await waiting(client, "C-00000000000000b9", 9.0)
    with pytest.raises(Refused) as refused:
        await store.claim(ADA, "C-00000000000000b9", "support", 2)
    assert refused.value.code == "limit"
    assert await client.zscore(HANDOVER_QUEUE, "C-00000000000000b9") == 9.0
    assert await client.hget(handover_request_key("C-00000000000000b9"), "owner") is None
    assert [e.type for e in await log(client)] == ["handover_claimed", "handover_claimed"]


async def test_transfer_to_team_and_agent_and_finish_only_by_the_owner(client: Any) -> None:
    store = HandoverStore(client)
    await waiting(client, "C-00000000000000c1", 50.0)
    await store.claim(ADA, "C-00000000000000c1", "support", 3)
    with pytest.raises(Refused) as refused:
        await store.finish(BOB, "C-00000000000000c1", "bob", "solved")  # Bob claims to own it
    assert refused.value.code == "not_owner"
    await store.transfer_to_agent(ADA, "C-00000000000000c1", BOB, "ada", 3)
    assert (await store.get("C-00000000000000c1")).owner == "bob"
    assert await client.smembers(owned_key("ada")) == set() and await client.smembers(owned_key("bob")) == {"C-00000000000000c1"}
    await store.transfer_to_team(BOB, "C-00000000000000c1", "sales", "bob")
    moved = await store.get("C-00000000000000c1")
    assert (moved.owner, moved.team) == ("", "sales")
    assert await client.zscore(HANDOVER_QUEUE, "C-00000000000000c1") == 50.0  # keeps its place: first asked at 50
    await store.claim(SAM, "C-00000000000000c1", "sales", 3)
    await store.finish(SAM, "C-00000000000000c1", "sam", "solved")
    assert await store.get("C-00000000000000c1") is None and await client.smembers(owned_key("sam")) == set()
    events = [(e.type, e.data.get("by"), e.data.get("outcome")) for e in await log(client)]
    assert events == [("handover_claimed", "ada", None), ("handover_transferred", "ada", None), ("handover_transferred", "bob", None),
                      ("handover_claimed", "sam", None), ("handover_resolved", "sam", "solved")]
    with pytest.raises(Refused) as refused:
        await store.finish(SAM, "C-00000000000000c1", "sam", "solved")
    assert refused.value.code == "not_owned"


async def test_notes_are_kept_and_logged_with_who_wrote_them(client: Any) -> None:
    store = HandoverStore(client)
    note = await store.add_note(ADA, "C-00000000000000d1", "  customer is on the Team plan <b>  ")
    assert note["text"] == "customer is on the Team plan <b>"
    assert [n["by"] for n in await store.notes("C-00000000000000d1")] == ["ada"]
    [event] = await log(client)
    assert (event.type, event.data["by"], event.text) == ("staff_note", "ada", "customer is on the Team plan <b>")
    for bad in ("   ", "x" * 4001):
        with pytest.raises(Refused):
            await store.add_note(ADA, "C-00000000000000d1", bad)
    assert len(await log(client)) == 1
