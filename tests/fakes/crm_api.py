"""Stand-ins for HubSpot's CRM v3 API, Salesforce's REST API and a webhook receiver, over real HTTP on 127.0.0.1.

Each checks what the real one checks for our calls (the bearer token, the request shape,
the required fields, the webhook signature), keeps what it accepted as the CRM would (one
contact per e-mail, one Lead per external id), answers in the provider's documented shapes,
and can be told to fail: `fail_next(n, status, retry_after=None)`, `hang_next(n)` (answer only
after `hang_seconds`, longer than the tests' client timeout), `garbage` (the next n answers
are a 200 with an HTML page).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from analytics.crm.clients import verify
from tests.conftest import free_port

HUBSPOT_TOKEN = "pat-eu1-00000000-test-token"
SALESFORCE_TOKEN = "00D5g000004test!AQ4AQ.fake"
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
HUBSPOT_LIFECYCLE = {"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist", "other"}
HUBSPOT_LEAD_STATUS = {"NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"}
_ids = itertools.count(501)


@dataclass
class FakeServer:
    """What the fakes share: a server on a free port, failure injection, the requests seen."""

    port: int = 0
    requests: List[Tuple[str, str, Any]] = field(default_factory=list)
    failures: List[Tuple[int, Optional[float]]] = field(default_factory=list)
    hangs: int = 0
    hang_seconds: float = 3.0  # longer than the tests' client timeout
    garbage: int = 0  # answer the next requests 200 with an HTML page, as a misconfigured proxy would

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> "FakeServer":
        app = web.Application(middlewares=[self._inject])
        self.routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, times: int, status: int, retry_after: Optional[float] = None) -> None:
        self.failures.extend([(status, retry_after)] * times)

    def hang_next(self, times: int) -> None:
        self.hangs += times

    @web.middleware
    async def _inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, body))
        if self.hangs:
            self.hangs -= 1
            await asyncio.sleep(self.hang_seconds)
        if self.garbage:
            self.garbage -= 1
            return web.Response(text="<html><body>Service temporarily unavailable</body></html>", content_type="text/html")
        if self.failures:
            status, retry_after = self.failures.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.json_response(self.error_body(status), status=status, headers=headers)
        return await handler(request)

    def error_body(self, status: int) -> Any:
        return {"status": "error", "message": f"injected {status}"}


class FakeHubSpot(FakeServer):
    """POST /crm/v3/objects/contacts/batch/upsert, keyed by e-mail (idProperty email)."""

    def __init__(self) -> None:
        super().__init__()
        self.contacts: Dict[str, Dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/crm/v3/objects/contacts/batch/upsert", self.upsert)

    def error_body(self, status: int) -> Any:
        category = "RATE_LIMITS" if status == 429 else "INTERNAL_ERROR"
        return {"status": "error", "message": f"injected {status}", "correlationId": "c0ffee", "category": category}

    async def upsert(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {HUBSPOT_TOKEN}":
            return web.json_response({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}, status=401)
        payload = await request.json()
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return web.json_response({"status": "error", "message": "inputs is required", "category": "VALIDATION_ERROR"}, status=400)
        results = []
        for item in inputs:
            props = item.get("properties") or {}
            problems = []
            if item.get("idProperty") != "email" or not item.get("id") or props.get("email") not in (None, item.get("id")):
                problems.append("idProperty must be email and id the e-mail")
            if props.get("lifecyclestage") not in (None, *HUBSPOT_LIFECYCLE):
                problems.append(f"{props.get('lifecyclestage')!r} is not a valid lifecyclestage")
            if props.get("hs_lead_status") not in (None, *HUBSPOT_LEAD_STATUS):
                problems.append(f"{props.get('hs_lead_status')!r} is not a valid hs_lead_status")
            if not all(isinstance(v, str) for v in props.values()):
                problems.append("property values must be strings")
            if problems:
                return web.json_response({"status": "error", "message": "; ".join(problems), "category": "VALIDATION_ERROR"}, status=400)
            existing = self.contacts.get(item["id"])
            contact = existing or {"id": str(next(_ids)), "properties": {}}
            contact["properties"].update(props)
            self.contacts[item["id"]] = contact
            results.append({"id": contact["id"], "properties": contact["properties"], "new": existing is None, "archived": False})
        return web.json_response({"status": "COMPLETE", "results": results, "startedAt": "2026-11-28T00:00:00Z", "completedAt": "2026-11-28T00:00:01Z"})


class FakeSalesforce(FakeServer):
    """PATCH /services/data/<version>/sobjects/Lead/<external id field>/<value>: upsert by external id."""

    def __init__(self, external_id_field: str = "Engage_Customer_Id__c") -> None:
        super().__init__()
        self.external_id_field = external_id_field
        self.leads: Dict[str, Dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_patch("/services/data/{version}/sobjects/Lead/{field}/{value}", self.upsert)

    def error_body(self, status: int) -> Any:
        code = "REQUEST_LIMIT_EXCEEDED" if status == 403 else "SERVER_UNAVAILABLE"
        return [{"message": f"injected {status}", "errorCode": code}]

    async def upsert(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SALESFORCE_TOKEN}":
            return web.json_response([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], status=401)
        if request.match_info["field"] != self.external_id_field:
            return web.json_response([{"message": f"Provided external ID field does not exist or is not accessible: {request.match_info['field']}", "errorCode": "NOT_FOUND"}], status=404)
        fields = await request.json()
        missing = [name for name in ("LastName", "Company") if not fields.get(name)]
        if missing:
            return web.json_response([{"message": f"Required fields are missing: {missing}", "errorCode": "REQUIRED_FIELD_MISSING", "fields": missing}], status=400)
        key = request.match_info["value"]
        existing = self.leads.get(key)
        lead = existing or {"Id": f"00Q5g00000{next(_ids):08d}"}
        lead.update(fields)
        self.leads[key] = lead
        return web.json_response({"id": lead["Id"], "success": True, "errors": [], "created": existing is None}, status=200 if existing else 201)


class FakeWebhookReceiver(FakeServer):
    """A receiver that verifies the signature as the documentation says, and keeps one delivery per id."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: Dict[str, Dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/engage", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(WEBHOOK_SECRET, request.headers.get("X-Engage-Timestamp", ""), body, request.headers.get("X-Engage-Signature", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        self.deliveries.setdefault(request.headers["X-Engage-Delivery"], json.loads(body))
        return web.json_response({"ok": True})
