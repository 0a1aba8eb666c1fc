"""What the fuzz suite shares: its hypothesis settings, input strategies, timed requests and the
checks that a request left either a whole conversation turn or nothing at all."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import redis
import requests
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from analytics.schema import EVENTS_STREAM, LogEvent
from connectors.messages import normalise_text, too_long_text
from scripts.stack import Stack
from tests.e2e.conftest import eventually, tracker

# A short, seed-fixed run in `make test`; `make fuzz` sets ENGAGE_FUZZ_EXAMPLES=10000.
EXAMPLES = int(os.environ.get("ENGAGE_FUZZ_EXAMPLES", "100"))
fuzz = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same cases on every run: a failure in `make test` is reproducible
    database=None,
    deadline=None,  # a request's own timeout is checked below; Rasa's first answers are slow
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much),
    print_blob=True,
)

# Over every channel's max_message_chars: refused with a reply of its own, never reaching Rasa.
# Sent after a repeat, its reply shows the repeat was handled (one sender's messages are handled
# in order).
SENTINEL = "s" * 6001  # a length no fuzzed text has (huge_text: 4000 to 5000)
SENTINEL_REPLY = too_long_text(len(SENTINEL), 4096)
REFUSAL_SECONDS = 5.0  # a refused request is answered before Rasa sees it: well within this
ANSWER_SECONDS = 60.0  # an accepted one goes through NLU, policies and the action server
TRACKER_PREFIX = "engage:tracker:"  # endpoints.yml: tracker_store key_prefix engage

# --- strategies ----------------------------------------------------------------------------------


class Fresh:
    """Stands for an identifier made unique when the case is sent, so that one case's conversation
    is never another's (hypothesis repeats values; derandomized runs repeat them across runs).
    `make` must not use the random module: hypothesis seeds it for each case."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def __repr__(self) -> str:
        return "Fresh()"


def fresh_in(value: Any, found: Dict[int, Any]) -> Any:
    """`value` with every Fresh replaced by a new identifier (remembered in `found` by id)."""
    if isinstance(value, Fresh):
        found.setdefault(id(value), value.make())
        return found[id(value)]
    if isinstance(value, dict):
        return {key: fresh_in(item, found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fresh_in(item, found) for item in value)
    return value


# Characters that broke or could break a text path: lone surrogates (JSON carries them, UTF-8 and
# the MiniLM tokenizer do not), NUL, bidi overrides, BOM, non-characters, combining marks, line
# separators, emoji (2 UTF-16 units), quotes and markup.
EDGE_CHARACTERS = [
    "\ud800", "\udfff", "\udc00", "\x00", "\x1e", "\u202e", "\u200f", "\u2066", "\ufeff", "\uffff",
    "\U0010ffff", "\u0301", "\u2028", "\r\n", "\t", "\x7f", "\\", '"', "'", "<script>", "{", "}", "/",
    "\U0001F600", "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "%s", "${x}", "\u00a0",
]
plain_text = st.text(max_size=40)
edge_text = st.lists(st.one_of(st.sampled_from(EDGE_CHARACTERS), st.text(max_size=4)), min_size=1, max_size=12).map("".join)
# What a customer might really type: these reach Rasa, so the accepted path is exercised too.
sayings = st.sampled_from([
    "hi", "hello", "How do I set up SAML single sign-on?", "what plans do you offer?", "I have an idea",
    "the export button does nothing", "talk to a human", "thanks", "/greet", "/ask_pricing", "stop",
    "/greet{\"name\": \"x\"}", "hi \ud800", "\u202eolleh", "caf\u00e9 \U0001F600", "???", "1", "hola",
])
huge_text = st.integers(min_value=4000, max_value=5000).map(lambda n: ("ab " * n)[:n])
message_texts = st.one_of(
    sayings, sayings, edge_text, plain_text,
    st.sampled_from(["", " ", "\n\t ", "\u200b", "\x00"]), huge_text,
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), plain_text, edge_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(plain_text, edge_text), inner, max_size=4)),
    max_leaves=16,
)


def deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=5000).map(lambda d: deep(d).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()),
    st.sampled_from([
        b"", b"{", b'{"a": 1', b"null", b"[]", b"0", b'"text"', b"NaN", b'{"a": NaN}', b'{"a": Infinity}',
        b'{"a": 1e999}', b"\xff\xfe{}", b'{"a": "\xed\xa0\x80"}', b"{\x00}", b'{"a":1}{"b":2}',
        b'{"message": "hi", "message": "again"}', b'\xef\xbb\xbf{"message": "hi"}',
    ]),
    st.integers(min_value=65_000, max_value=300_000).map(lambda n: b'{"message": "' + b"a" * n + b'"}'),
)


def encoded(value: Any, how: str) -> bytes:
    """A JSON body: ASCII-escaped (lone surrogates as \\ud800), raw UTF-8 with surrogates passed
    through (not valid UTF-8), or pretty-printed."""
    if how == "utf8-surrogatepass":
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "indented":
        return json.dumps(value, indent=2).encode("ascii")
    return json.dumps(value).encode("ascii")


encodings = st.sampled_from(["ascii", "ascii", "utf8-surrogatepass", "indented"])


def expected_text(text: str) -> str:
    """A message's text as the tracker holds it: through JSON (which joins an escaped surrogate
    pair, "\\ud800\\udfff", into one character), normalised by the connector, stripped by Rasa."""
    return normalise_text(json.loads(json.dumps(text))).strip()


def ordinary(text: Any) -> bool:
    """True for a text every channel accepts and passes on to Rasa (measured as it arrives)."""
    if not isinstance(text, str):
        return False
    text = json.loads(json.dumps(text))
    return bool(text.strip()) and len(text) <= 4096


# --- requests ------------------------------------------------------------------------------------


def header_value(text: str) -> bytes:
    """Any text as a header value HTTP can carry: no CR or LF, no leading whitespace (requests
    refuses those); lone surrogates become bytes that are not UTF-8."""
    return text.replace("\r", "").replace("\n", "").lstrip().encode("utf-8", "surrogatepass")


def timed(method: str, url: str, **kwargs: Any) -> Tuple[requests.Response, float]:
    """The response and how long it took; no request may take longer than ANSWER_SECONDS."""
    started = time.monotonic()
    response = requests.request(method, url, timeout=(5, ANSWER_SECONDS), **kwargs)
    return response, time.monotonic() - started


def assert_answered(response: requests.Response, seconds: float) -> None:
    """No 5xx; a refusal quickly. After a 429 (rate_limits: the long run sends faster than a
    client address may) wait as a well-behaved client does, so later cases are not all 429s."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert seconds < REFUSAL_SECONDS, f"a {response.status_code} took {seconds:.1f}s"
    if response.status_code == 429:
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 10.0))


# --- the interaction log and the tracker store ---------------------------------------------------


class LogTail:
    """The interaction log read incrementally, records grouped by conversation (deduplicated on
    event_id: delivery is at-least-once), so each check costs only what is new."""

    def __init__(self, store: redis.Redis) -> None:
        self.store = store
        self.last = "0-0"
        self.by_conversation: Dict[str, Dict[str, LogEvent]] = defaultdict(dict)

    def read(self) -> None:
        while True:
            entries = self.store.xrange(EVENTS_STREAM, min=f"({self.last}", count=2000)
            if not entries:
                return
            for entry_id, fields in entries:
                event = LogEvent.from_fields(fields)
                self.by_conversation[event.conversation_id].setdefault(event.event_id, event)
                self.last = entry_id

    def events(self, conversation_id: str) -> List[LogEvent]:
        self.read()
        return sorted(self.by_conversation.get(conversation_id, {}).values(), key=lambda e: e.timestamp)

    def user_texts(self, conversation_id: str) -> List[str]:
        return [e.text for e in self.events(conversation_id) if e.type == "user"]

    def touched(self, conversation_ids: Set[str]) -> Set[str]:
        self.read()
        return {c for c in conversation_ids if self.by_conversation.get(c)}


def tracker_user_texts(stack: Stack, conversation_id: str) -> List[str]:
    return [e.get("text") or "" for e in tracker(stack, conversation_id)["events"] if e["event"] == "user"]


def assert_turn_recorded(stack: Stack, log: LogTail, conversation_id: str, texts: List[str]) -> None:
    """The conversation's tracker and the interaction log hold exactly these user turns."""
    eventually(lambda: len(log.user_texts(conversation_id)) >= len(texts), f"{len(texts)} user record(s) of {conversation_id}", 30)
    assert log.user_texts(conversation_id) == texts
    assert tracker_user_texts(stack, conversation_id) == texts


def assert_nothing_written(store: redis.Redis, log: LogTail, conversation_ids: Set[str], identity_keys: Set[str] = frozenset()) -> None:
    """Refused input left no tracker, no log record and no identity behind. Checked once at the
    end of a run (after the broker's writes have settled), for every refused case."""
    time.sleep(1.0)
    assert not log.touched(conversation_ids), sorted(log.touched(conversation_ids))[:10]
    trackers = [c for c in conversation_ids if store.exists(TRACKER_PREFIX + c)]
    assert not trackers, trackers[:10]
    identities = [k for k in identity_keys if store.exists(k)]
    assert not identities, identities[:10]


def new_sender() -> str:
    return f"fz-{uuid.uuid4().hex[:16]}"


def customer_of(store: redis.Redis, identity: str) -> Optional[str]:
    value = store.get(f"engage:identity:{identity}")
    return str(value) if value else None


# --- what a run did ------------------------------------------------------------------------------

RESULTS = Path(__file__).resolve().parents[3] / "results" / "fuzz"


class Tally:
    """Counts of one entry point's run (cases, answers by status, accepted turns checked), the
    stack's log lines written meanwhile that hold a traceback, and the time taken; written to
    results/fuzz/<name>.json for BENCHMARKS.md."""

    def __init__(self, name: str, stack: Stack) -> None:
        self.name = name
        self.cases = 0
        self.statuses: Counter = Counter()
        self.turns_checked = 0
        self.started = time.monotonic()
        self.logs = {path.name: path.stat().st_size for path in stack.logs.glob("*.log")}
        self.stack = stack

    def count(self, status: "int | str") -> None:
        self.cases += 1
        self.statuses[str(status)] += 1

    def tracebacks(self) -> List[str]:
        """The last line of each traceback the stack's processes logged since the run began (but
        Sanic's own for a 404, which it logs with a traceback: a right answer to a wrong path)."""
        found: List[str] = []
        for path in self.stack.logs.glob("*.log"):
            with path.open("rb") as handle:
                handle.seek(self.logs.get(path.name, 0))
                lines = handle.read().decode("utf-8", "replace").splitlines()
            in_traceback = False
            for line in lines:
                if line.startswith("Traceback (most recent call last)"):
                    in_traceback = True
                elif in_traceback and line and not line.startswith((" ", "\t", "Traceback", "During handling", "The above exception")):
                    if not line.startswith("sanic.exceptions.NotFound:"):
                        found.append(f"{path.name}: {line.strip()[:300]}")
                    in_traceback = False
        return found

    def write(self) -> Dict[str, Any]:
        summary = {
            "entry_point": self.name,
            "examples_setting": EXAMPLES,
            "cases": self.cases,
            "statuses": dict(sorted(self.statuses.items())),
            "turns_checked": self.turns_checked,
            "seconds": round(time.monotonic() - self.started, 1),
            "stack_tracebacks": Counter(self.tracebacks()),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{self.name}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"\nfuzz {self.name}: {json.dumps(summary)}")
        return summary

    def assert_quiet(self) -> None:
        """No process of the stack logged a traceback meanwhile: an error answered with a 2xx or
        4xx (engineio logs and answers 200, a background job dies) is still an error."""
        assert not self.tracebacks(), self.tracebacks()[:10]
