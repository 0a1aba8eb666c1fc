"""Talking to the CRMs: HubSpot (contacts batch upsert by e-mail), Salesforce (Lead upsert by external id)
and a generic signed webhook. Each answer is sorted into sent, try again later, or never going to work.

Webhook signature, for receivers: `X-Engage-Signature: v1=<hex>` where hex is
HMAC-SHA256(secret, "<X-Engage-Timestamp>.<raw body>"); refuse a timestamp more than five
minutes away from your clock, and compare with a constant-time comparison (`verify` below
does both). `X-Engage-Delivery` is the same for every retry of one hand-off: use it to
ignore a delivery you already took.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Protocol
from urllib.parse import quote

import aiohttp

from analytics.crm.config import CrmConfig
from analytics.crm.payloads import hubspot_input, salesforce_lead, webhook_event

SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between our timestamp and its clock
MAX_DETAIL = 300


class Result(str, enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # the CRM is down, slow or rate-limiting: try again later
    FAILED = "failed"  # it will never be accepted as it is: dead-letter it with the reason


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""
    retry_after: Optional[float] = None


class CrmClient(Protocol):
    async def push(self, session: aiohttp.ClientSession, record: Dict[str, Any], delivery: str) -> Outcome: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: Optional[float] = None) -> bool:
    """What a webhook receiver checks: a fresh timestamp and a matching signature."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= SIGNATURE_TOLERANCE and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _retry_after(response: aiohttp.ClientResponse) -> Optional[float]:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _classify(
    response: aiohttp.ClientResponse,
    accepted: Callable[[Any], bool] = lambda _: True,
    retry_statuses: frozenset = frozenset({408, 425, 429}),
) -> Outcome:
    """Sent (a 2xx whose body `accepted` takes), retry (429, 5xx, an answer we cannot read), or failed."""
    full = await response.text(errors="replace")
    text = full[:MAX_DETAIL]
    if 200 <= response.status < 300:
        if response.status != 204 and not accepted(_json(full)):
            # A proxy's HTML page or a truncated body: we cannot tell it was stored, so try again.
            return Outcome(Result.RETRY, f"{response.status} but the answer is not what the CRM sends: {text[:120]!r}")
        return Outcome(Result.SENT, f"{response.status}")
    if response.status in retry_statuses or response.status >= 500:
        return Outcome(Result.RETRY, f"{response.status}: {text}", _retry_after(response))
    return Outcome(Result.FAILED, f"{response.status}: {text}")


async def _send(call: Any, accepted: Callable[[Any], bool] = lambda _: True) -> Outcome:
    """Run one request; a network failure or timeout is worth another try."""
    try:
        async with call as response:
            return await _classify(response, accepted)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Outcome(Result.RETRY, f"{type(exc).__name__}: {exc}"[:MAX_DETAIL])


class HubSpotClient:
    def __init__(self, config: CrmConfig) -> None:
        self.config = config

    async def push(self, session: aiohttp.ClientSession, record: Dict[str, Any], delivery: str) -> Outcome:
        item = hubspot_input(record)
        if item is None:
            return Outcome(Result.FAILED, "no e-mail address to upsert the contact by")
        outcome = await _send(session.post(
            f"{self.config.base_url.rstrip('/')}/crm/v3/objects/contacts/batch/upsert",
            json={"inputs": [item]},
            headers={"Authorization": f"Bearer {self.config.token}"},
            timeout=aiohttp.ClientTimeout(total=self.config.retry.timeout),
        ), accepted=lambda body: isinstance(body, dict) and isinstance(body.get("results"), list))
        if outcome.result is Result.SENT and outcome.detail == "207":  # some inputs failed: HubSpot's multi-status
            return Outcome(Result.FAILED, "207: HubSpot refused the contact (multi-status)")
        return outcome


class SalesforceClient:
    def __init__(self, config: CrmConfig) -> None:
        self.config = config

    async def push(self, session: aiohttp.ClientSession, record: Dict[str, Any], delivery: str) -> Outcome:
        url = (
            f"{self.config.base_url.rstrip('/')}/services/data/{self.config.api_version}/sobjects/Lead/"
            f"{self.config.external_id_field}/{quote(record['customer_id'], safe='')}"
        )
        try:
            async with session.patch(
                url, json=salesforce_lead(record), headers={"Authorization": f"Bearer {self.config.token}"},
                timeout=aiohttp.ClientTimeout(total=self.config.retry.timeout),
            ) as response:
                if response.status == 403 and "REQUEST_LIMIT_EXCEEDED" in await response.text(errors="replace"):
                    return Outcome(Result.RETRY, "403: REQUEST_LIMIT_EXCEEDED", _retry_after(response))
                outcome = await _classify(response, accepted=lambda body: isinstance(body, dict) and body.get("success") is True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(Result.RETRY, f"{type(exc).__name__}: {exc}"[:MAX_DETAIL])
        if outcome.result is Result.FAILED and outcome.detail.startswith("401"):
            return Outcome(Result.FAILED, outcome.detail + " (refresh SALESFORCE_ACCESS_TOKEN)")
        return outcome


class WebhookClient:
    def __init__(self, config: CrmConfig) -> None:
        self.config = config

    async def push(self, session: aiohttp.ClientSession, record: Dict[str, Any], delivery: str) -> Outcome:
        body = json.dumps(webhook_event(record), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        return await _send(session.post(
            self.config.base_url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Engage-Timestamp": timestamp,
                "X-Engage-Signature": sign(self.config.secret, timestamp, body),
                "X-Engage-Delivery": delivery,
            },
            timeout=aiohttp.ClientTimeout(total=self.config.retry.timeout),
        ))


CLIENTS = {"hubspot": HubSpotClient, "salesforce": SalesforceClient, "webhook": WebhookClient}


def client_for(config: CrmConfig) -> Optional[CrmClient]:
    """The client of the configured provider (None when the hand-off is off)."""
    kind = CLIENTS.get(config.provider)
    return kind(config) if kind is not None else None
