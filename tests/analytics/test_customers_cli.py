"""Staff identity commands against a real Redis."""

from __future__ import annotations

import asyncio
import json

from typing import List

import pytest
import redis
import redis.asyncio

from analytics.customers import CustomerDirectory, Identity, close
from analytics.customers_cli import main
from analytics.schema import EVENTS_STREAM, LogEvent


def _link(url: str) -> str:
    async def go() -> str:
        client = redis.asyncio.Redis.from_url(url)
        try:
            directory = CustomerDirectory(client)
            resolved = await directory.resolve([(Identity.of("portal", "acme:u-1"), "portal_jwt"), (Identity.of("email", "dana@acme.example"), "portal_jwt")])
            return resolved.customer_id
        finally:
            await close(client)

    return asyncio.run(go())


def _records(url: str) -> List[LogEvent]:
    client = redis.Redis.from_url(url)
    try:
        return [LogEvent.from_fields(fields) for _, fields in client.xrange(EVENTS_STREAM)]
    finally:
        client.close()


def test_staff_list_find_and_unlink(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    customer = _link(redis_url)
    assert main(["--json", "identities", customer]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {i["identity"]: i["evidence"] for i in listed["identities"]} == {"portal:acme:u-1": "portal_jwt", "email:dana@acme.example": "portal_jwt"}
    assert main(["find", "email:Dana@Acme.example"]) == 0 and capsys.readouterr().out.strip() == customer
    assert main(["unlink", customer, "email:dana@acme.example", "--by", "sam", "--reason", "shared inbox"]) == 0
    assert "unlinked" in capsys.readouterr().out
    assert main(["unlink", customer, "email:dana@acme.example"]) == 1
    (record,) = _records(redis_url)  # the second unlink changed nothing and recorded nothing
    assert (record.type, record.conversation_id, record.source, record.channel) == ("identity_unlinked", customer, "staff", "email")
    assert record.data == {"identity": "email:dana@acme.example", "by": "sam", "reason": "shared inbox"}
    assert main(["find", "email:dana@acme.example"]) == 1
    capsys.readouterr()
    assert main(["identities", "not-a-customer"]) == 2
    assert "is not a customer id" in capsys.readouterr().err
    assert main(["find", "fax:123"]) == 2


def test_an_unreachable_redis_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["find", "email:x@y.example"]) == 2
    assert "cannot reach Redis" in capsys.readouterr().err
