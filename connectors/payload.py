"""Validation of an inbound REST chat payload: pure functions, no I/O, no Rasa."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import sub
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from connectors.errors import RequestRejected
from connectors.messages import normalise_text, too_long_text

ALLOWED_FIELDS = frozenset({"sender", "message", "metadata", "input_channel"})
SENDER_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]+")
CHANNEL_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")

# Arrays and objects inside each other, at most: a WhatsApp webhook needs about 10, REST
# metadata a few. json.loads, Rasa and the log's serialiser all recurse on nesting, so a
# body nested hundreds deep must be refused before any of them sees it.
MAX_JSON_DEPTH = 32
# A string literal; an unterminated one runs to the end (so the scan stays linear).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = str.maketrans({"[": "\x02", "{": "\x02", "]": "\x00", "}": "\x00"})


@dataclass(frozen=True)
class PayloadLimits:
    max_message_chars: int = 4096
    max_metadata_bytes: int = 8192  # compact UTF-8 JSON
    max_sender_chars: int = 128
    # Checked before parsing. Generous next to the limits above because JSON may
    # escape every character of a message as \uXXXX (6 bytes).
    max_body_bytes: int = 64 * 1024


@dataclass(frozen=True)
class InboundMessage:
    sender_id: str
    text: str
    metadata: Optional[Dict[str, Any]]
    input_channel: str


def parse_rest_payload(
    body: bytes,
    limits: PayloadLimits = PayloadLimits(),
    *,
    default_channel: str = "rest",
    allowed_channels: FrozenSet[str] = frozenset(),
) -> InboundMessage:
    """Check a raw request body; raise RequestRejected naming the first problem.

    `input_channel` in the payload is accepted only if it is `default_channel` or
    listed in `allowed_channels`: otherwise any caller could pass itself off as,
    say, WhatsApp in the interaction log.
    """
    payload = load_object(body, limits.max_body_bytes, ALLOWED_FIELDS)
    sender = _check_sender(payload.get("sender"), limits)
    text = check_message(payload, limits)
    metadata = _check_metadata(payload.get("metadata"), limits)
    channel = _check_channel(payload.get("input_channel"), default_channel, allowed_channels)
    return InboundMessage(sender_id=sender, text=text, metadata=metadata, input_channel=channel)


def load_object(body: bytes, max_body_bytes: int, allowed_fields: FrozenSet[str]) -> Dict[str, Any]:
    """A JSON object body of at most `max_body_bytes` with only `allowed_fields`; RequestRejected (413/400) otherwise."""
    if len(body) > max_body_bytes:
        raise body_too_large(max_body_bytes)
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise RequestRejected(400, "not_an_object", "The request body must be a JSON object.")
    unknown = sorted(set(payload) - allowed_fields)
    if unknown:
        raise RequestRejected(
            400,
            "unknown_fields",
            f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed_fields))}.",
            unknown,
        )
    return payload


def body_too_large(limit: int) -> RequestRejected:
    return RequestRejected(413, "body_too_large", f"The request body is larger than {limit} bytes.")


def load_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a request body; RequestRejected (400, invalid_json) when it is not clean UTF-8 JSON
    or nests deeper than `max_depth` (checked before parsing). Every channel reads JSON here."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected(400, "invalid_json", "The request body must be UTF-8 encoded JSON.") from None
    if nesting_exceeds(text, max_depth):
        raise RequestRejected(
            400, "invalid_json", f"The request body nests arrays and objects more than {max_depth} deep."
        )
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError:  # not reached under the depth cap; kept so no body ever becomes a 500
        raise RequestRejected(400, "invalid_json", "The request body is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError and the hooks below
        raise RequestRejected(400, "invalid_json", f"The request body is not valid JSON: {exc}") from None


class CappedJson:
    """The `json` module for libraries that take one (python-socketio's `AsyncServer(json=...)`):
    `loads` refuses nesting deeper than MAX_JSON_DEPTH with a ValueError before parsing."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        text = bytes(data).decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        if isinstance(text, str) and nesting_exceeds(text, MAX_JSON_DEPTH):
            raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} deep")
        return json.loads(text, *args, **kwargs)


def nesting_exceeds(text: str, limit: int) -> bool:
    """True when arrays and objects in `text` (JSON, maybe malformed) nest deeper than `limit`.

    Told without recursing: string literals are cut out, then the depth is a running sum over
    the brackets left (C-speed iteration; a 256 KB body of brackets takes milliseconds).
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = brackets.translate(_DEPTH_STEP).encode("latin-1")  # opening 2, closing 0
    return max(accumulate(map(sub, steps, repeat(1))), default=0) > limit


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _check_sender(sender: Any, limits: PayloadLimits) -> str:
    if not isinstance(sender, str) or not sender:
        raise RequestRejected(400, "invalid_sender", "'sender' must be a non-empty string.", ["sender"])
    if len(sender) > limits.max_sender_chars:
        raise RequestRejected(
            400,
            "invalid_sender",
            f"'sender' must be at most {limits.max_sender_chars} characters.",
            ["sender"],
        )
    if not SENDER_PATTERN.fullmatch(sender):
        raise RequestRejected(
            400,
            "invalid_sender",
            "'sender' may contain only letters, digits and _ . : @ -",
            ["sender"],
        )
    return sender


def check_message(payload: Dict[str, Any], limits: PayloadLimits) -> str:
    text = payload.get("message")
    if not isinstance(text, str):
        raise RequestRejected(400, "invalid_message", "'message' must be a string.", ["message"])
    if len(text) > limits.max_message_chars:
        raise RequestRejected(413, "message_too_long", too_long_text(len(text), limits.max_message_chars), ["message"])
    if not text.strip():
        raise RequestRejected(400, "empty_message", "'message' must not be empty.", ["message"])
    return normalise_text(text)


def _check_metadata(metadata: Any, limits: PayloadLimits) -> Optional[Dict[str, Any]]:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise RequestRejected(400, "invalid_metadata", "'metadata' must be a JSON object.", ["metadata"])
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    except UnicodeEncodeError:
        raise RequestRejected(
            400, "invalid_metadata", "'metadata' contains invalid Unicode text.", ["metadata"]
        ) from None
    if size > limits.max_metadata_bytes:
        raise RequestRejected(
            400,
            "metadata_too_large",
            f"'metadata' must be at most {limits.max_metadata_bytes} bytes as JSON (got {size}).",
            ["metadata"],
        )
    return metadata


def _check_channel(channel: Any, default: str, allowed: FrozenSet[str]) -> str:
    if channel is None:
        return default
    if not isinstance(channel, str) or not CHANNEL_PATTERN.fullmatch(channel):
        raise RequestRejected(
            400, "invalid_input_channel", "'input_channel' must be a short lower-case name.", ["input_channel"]
        )
    if channel != default and channel not in allowed:
        raise RequestRejected(
            400,
            "invalid_input_channel",
            f"'input_channel' {channel!r} is not accepted on this endpoint.",
            ["input_channel"],
        )
    return channel
