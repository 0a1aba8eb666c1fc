"""The customer portal's chat: messages signed by the portal's backend, carrying what the customer was doing.

The portal's backend issues a short-lived JWT for the logged-in user (HS256 with a shared
secret, or RS256 with the public key configured here) naming the account, the user, their
e-mail and role; `exp`, `iat`, `aud` and `iss` are checked, and a token may live at most
`max_token_lifetime` seconds (default one hour: `exp - iat`, and `exp` from now), so a token
that leaks cannot be replayed for long. Each message carries in-use
context (product, feature, page, app version), which reaches the tracker as message
metadata and is stored with any feedback, idea or problem captured from it.

    POST /webhooks/portal/webhook
    Authorization: Bearer <JWT>
    {"message": "the export button does nothing", "message_id": "optional, for retries",
     "context": {"product": "insights", "feature": "export", "page": "/insights/d/42", "app_version": "5.2.0"}}

    GET /webhooks/portal/messages          (same bearer JWT)

answers the messages that came for the user while they were not asking (a support agent's reply,
a notification: connectors.proactive), oldest first, and forgets them; they are also put before
the replies of the user's next message. The answer is the list of replies, as on the REST channel; too many requests from one address
or one portal user get 429 with Retry-After (`rate_limits`, connectors.limits). The JWT is verified evidence
of who writes: its portal user and e-mail are linked to one customer (analytics.customers).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import jwt
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.customers import EMAIL, PORTAL, Identity, IdentityError
from connectors.dedup import Deduplicator
from connectors.delivery import OnNewMessage, deliver
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.identity import IdentityResolver, IdentityUnavailable, shared_resolver
from connectors.limits import REQUEST_KEYS, REQUEST_LIMITS, Limiter, RateLimits
from connectors.mailbox import Mailbox
from connectors.messages import APOLOGY_TEXT, normalise_text
from connectors.options import Options
from connectors.payload import PayloadLimits, check_message, load_object
from connectors.requests import client_address, read_body

logger = logging.getLogger(__name__)

CONTEXT_KEYS = ("product", "feature", "page", "app_version")
MAX_CONTEXT_VALUE = 200
FIELDS = frozenset({"message", "context", "message_id"})
LEEWAY_SECONDS = 30
MAX_TOKEN_LIFETIME = 3600  # seconds; the portal's backend should issue tokens for minutes, not days
ALGORITHMS = ("HS256", "RS256")


@dataclass(frozen=True)
class PortalUser:
    account_id: str
    user_id: str
    email: Optional[str]
    role: Optional[str]

    def identities(self) -> List[Identity]:
        found = [Identity.of(PORTAL, f"{self.account_id}:{self.user_id}")]
        if self.email:
            found.append(Identity.of(EMAIL, self.email))
        return found


class PortalMailboxOutput(CollectingOutputChannel):
    """Keeps what Rasa's output would have returned, in each portal user's mailbox."""

    reports_delivery = True

    def __init__(self, mailbox: Mailbox, users: List[str], report: Any) -> None:
        super().__init__()
        self.mailbox = mailbox
        self.users = users
        self.report = report
        self.author: Optional[str] = None

    async def _persist_message(self, message: Dict[str, Any]) -> None:
        if self.author:
            message = {**message, "author": self.author}
        for user in self.users:
            await self.mailbox.put(PORTAL, user, message)
            self.report.queued()


class PortalInput(InputChannel):
    """`connectors.portal.PortalInput` in credentials.yml."""

    OPTIONS = {
        "jwt_secret": str,
        "jwt_public_key": str,
        "jwt_algorithm": str,
        "audience": str,
        "issuer": str,
        "max_message_chars": int,
        "max_body_bytes": int,
        "max_token_lifetime": int,
        "rate_limits": object,  # a mapping, or false (connectors.limits.RateLimits.read); the sender is the portal user
    }

    def __init__(
        self,
        *,
        key: str,
        algorithm: str,
        audience: str,
        issuer: str,
        limits: PayloadLimits = PayloadLimits(),
        max_token_lifetime: int = MAX_TOKEN_LIFETIME,
        rate_limits: RateLimits = REQUEST_LIMITS,
        resolver: Optional[IdentityResolver] = None,
        deduplicator: Optional[Deduplicator] = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ConnectorConfigError(f"{__name__}.PortalInput: jwt_algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        self.key = key
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer
        self.limits = limits
        self.max_token_lifetime = max_token_lifetime
        self.limiter = Limiter(rate_limits)
        self.resolver = resolver or shared_resolver()
        self.deduplicator = deduplicator or Deduplicator(self.resolver)
        self._mailbox: Optional[Mailbox] = None

    @property
    def mailbox(self) -> Mailbox:
        if self._mailbox is None:  # lazily: the Redis client is made on first use, in the server's loop
            self._mailbox = Mailbox(self.resolver.client)
        return self._mailbox

    async def proactive_output(self, conversation_id: str, report: Any) -> OutputChannel:
        """connectors.proactive: waits for each portal user linked to the customer (GET /messages)."""
        from connectors.proactive import Unreachable

        linked = await self.resolver.directory.identities(conversation_id)
        users = [item.identity.value for item in linked if item.identity.kind == PORTAL]
        if not users:
            raise Unreachable("No portal user is linked to this customer.")
        return PortalMailboxOutput(self.mailbox, users, report)

    @classmethod
    def name(cls) -> str:
        return "portal"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "PortalInput":
        owner = f"{__name__}.PortalInput"
        options = Options.read(
            owner,
            credentials,
            cls.OPTIONS,
            required=("audience", "issuer"),
            env_hint={"audience": "PORTAL_JWT_AUDIENCE", "issuer": "PORTAL_JWT_ISSUER"},
        )
        values = options.values
        algorithm = values.get("jwt_algorithm", "HS256")
        key_name = "jwt_public_key" if algorithm == "RS256" else "jwt_secret"
        if not values.get(key_name):
            hint = "PORTAL_JWT_PUBLIC_KEY" if key_name == "jwt_public_key" else "PORTAL_JWT_SECRET"
            raise ConnectorConfigError(f"{owner}: missing {key_name} (set {hint}) for {algorithm}; secrets come from the environment, see .env.example")
        if algorithm == "HS256" and len(values[key_name].encode()) < 32:
            raise ConnectorConfigError(f"{owner}: jwt_secret must be at least 32 bytes for HS256")
        options.positive("max_message_chars", "max_body_bytes", "max_token_lifetime")
        limits = PayloadLimits(
            max_message_chars=values.get("max_message_chars", PayloadLimits.max_message_chars),
            max_body_bytes=values.get("max_body_bytes", PayloadLimits.max_body_bytes),
        )
        return cls(
            key=values[key_name], algorithm=algorithm, audience=values["audience"], issuer=values["issuer"], limits=limits,
            max_token_lifetime=values.get("max_token_lifetime", MAX_TOKEN_LIFETIME),
            rate_limits=RateLimits.read(owner, values.get("rate_limits"), REQUEST_LIMITS, REQUEST_KEYS),
        )

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        portal = Blueprint("engage_portal", __name__)

        @portal.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        # stream=True, as the other webhooks: the token is checked before any of the body is read,
        # and an oversized body is refused after max_body_bytes instead of being buffered first.
        @portal.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                self.limiter.check_address(client_address(request, self.limiter))
                user = self.verify(request.headers.get("authorization"))
                text, context, message_id = self.parse(await read_body(request, self.limits.max_body_bytes))
                with self.limiter.admit(f"{user.account_id}:{user.user_id}"):
                    return await self.handle(request.app, user, text, context, message_id, on_new_message)
            except RequestRejected as rejected:
                logger.info("portal: rejected a request (%s): %s", rejected.code, rejected.detail)
                headers = rejected.headers()
                if rejected.status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="engage-portal"'
                return response.json(rejected.body(), status=rejected.status, headers=headers)

        @portal.route("/messages", methods=["GET"])
        async def waiting(request: Request) -> HTTPResponse:
            try:
                self.limiter.check_address(client_address(request, self.limiter))
                user = self.verify(request.headers.get("authorization"))
            except RequestRejected as rejected:
                headers = rejected.headers()
                if rejected.status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="engage-portal"'
                return response.json(rejected.body(), status=rejected.status, headers=headers)
            return response.json(await self._waiting(user))

        return portal

    async def _waiting(self, user: PortalUser) -> List[Dict[str, Any]]:
        try:
            return await self.mailbox.take(PORTAL, f"{user.account_id}:{user.user_id}")
        except Exception as exc:  # Redis away: they stay for the next call
            logger.warning("portal: could not read the waiting messages of %s: %s", user.user_id, exc)
            return []

    async def handle(
        self, app: Sanic, user: PortalUser, text: str, context: Dict[str, Any], message_id: Optional[str], on_new_message: OnNewMessage
    ) -> HTTPResponse:
        """Pass a checked message to Rasa as the user's customer; the replies (an apology if there are none)."""
        if message_id and not await self.deduplicator.first_time("portal", f"{user.account_id}:{user.user_id}:{message_id}"):
            return response.json([], status=200, headers={"X-Engage-Duplicate": "1"})
        collector = CollectingOutputChannel()
        try:
            customer_id = await self.resolver.customer_for(user.identities())
        except IdentityUnavailable:
            return response.json([{"recipient_id": user.user_id, "text": APOLOGY_TEXT}], status=503)
        metadata = {**context, "portal": {"account_id": user.account_id, "user_id": user.user_id, "role": user.role}}
        message = UserMessage(text, collector, customer_id, input_channel=self.name(), metadata=metadata)
        await deliver(app, message, on_new_message)
        return response.json(await self._waiting(user) + collector.messages)

    def verify(self, authorization: Optional[str]) -> PortalUser:
        """The portal user a bearer token names; RequestRejected (401/403) when it is missing or not valid."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestRejected(401, "missing_token", "Sign in to the portal: this chat needs the portal's bearer token.")
        if not token.isascii():  # a JWT is base64url; bytes that are not UTF-8 arrive as surrogate escapes
            raise RequestRejected(401, "invalid_token", "The portal token is not valid (it is not ASCII text).")
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=[self.algorithm],  # exactly one: never let the token choose ("none", HS/RS confusion)
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            raise RequestRejected(403, "token_not_for_us", f"The token is not meant for this chat ({exc}).") from None
        except jwt.ExpiredSignatureError:
            raise RequestRejected(401, "token_expired", "Your portal session has expired; please reload the page.") from None
        except jwt.PyJWTError as exc:
            raise RequestRejected(401, "invalid_token", f"The portal token is not valid ({exc}).") from None
        self._check_lifetime(claims)
        account_id, user_id = claims.get("account_id"), claims.get("sub")
        email, role = claims.get("email"), claims.get("role")
        if not isinstance(account_id, (str, int)) or isinstance(account_id, bool):
            raise RequestRejected(403, "invalid_claims", "The token names no account_id.")
        try:
            user = PortalUser(str(account_id), str(user_id), email if isinstance(email, str) else None, role if isinstance(role, str) else None)
            user.identities()  # checks the account, user and e-mail formats
        except IdentityError as exc:
            raise RequestRejected(403, "invalid_claims", f"The token's account, user or e-mail is not usable: {exc}") from None
        return user

    def _check_lifetime(self, claims: Dict[str, Any]) -> None:
        """A token may not be valid for longer than max_token_lifetime: issued for that long at most,
        and expiring no later than that from now (so a forged future `iat` does not stretch it)."""
        expires, issued = float(claims["exp"]), float(claims["iat"])  # PyJWT checked both are numbers
        longest = self.max_token_lifetime
        if expires - issued > longest or expires - time.time() > longest + LEEWAY_SECONDS:  # leeway: clock skew
            raise RequestRejected(
                401,
                "token_lifetime_too_long",
                f"The portal token is valid for longer than {self.max_token_lifetime} seconds; "
                "the portal must issue shorter-lived tokens.",
            )

    def parse(self, body: bytes) -> "tuple[str, Dict[str, Any], Optional[str]]":
        payload = load_object(body, self.limits.max_body_bytes, FIELDS)
        text = check_message(payload, self.limits)
        message_id = payload.get("message_id")
        if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 128):
            raise RequestRejected(400, "invalid_message_id", "'message_id' must be a string of at most 128 characters.", ["message_id"])
        return text, _context(payload.get("context")), message_id


def _context(raw: Any) -> Dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RequestRejected(400, "invalid_context", "'context' must be an object with product, feature, page and app_version.", ["context"])
    unknown = sorted(set(raw) - set(CONTEXT_KEYS))
    if unknown:
        raise RequestRejected(400, "invalid_context", f"Unknown context field(s): {', '.join(unknown)}. Allowed: {', '.join(CONTEXT_KEYS)}.", ["context"])
    context: Dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_CONTEXT_VALUE:
            raise RequestRejected(400, "invalid_context", f"context.{key} must be text of at most {MAX_CONTEXT_VALUE} characters.", ["context"])
        if value.strip():
            context[key] = normalise_text(value.strip())
    return context
