"""Rasa event broker that appends every tracker event to the Redis interaction-log stream."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import urllib.parse
from asyncio import AbstractEventLoop
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, OrderedDict, Tuple, Union

from rasa.core.brokers.broker import EventBroker
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig

from analytics.eventlog import BufferedStreamWriter, encodable
from analytics.schema import EVENTS_STREAM, SOURCE_RASA, LogEvent, from_tracker_event

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = ".data"
SPOOL_FILE = Path("spool") / "rasa-events.jsonl"

# Options accepted under `event_broker:` in endpoints.yml besides `type` and `url`.
_INT_OPTIONS = ("batch_size", "buffer_limit", "channel_cache_size")
_FLOAT_OPTIONS = ("socket_timeout", "close_timeout")
_STR_OPTIONS = ("stream", "spool_path")
KNOWN_OPTIONS = frozenset(_INT_OPTIONS + _FLOAT_OPTIONS + _STR_OPTIONS)


class BrokerConfigError(RasaException):
    """The `event_broker` section of endpoints.yml is unusable."""


def default_spool_path() -> Path:
    """`$ENGAGE_DATA_DIR/spool/rasa-events.jsonl` (ENGAGE_DATA_DIR defaults to `.data`)."""
    return Path(os.environ.get("ENGAGE_DATA_DIR") or DEFAULT_DATA_DIR) / SPOOL_FILE


class ChannelMemory:
    """Bounded LRU of the last input channel per conversation.

    Rasa sets `input_channel` on user events only; bot, action and slot events of
    the same conversation take it from here.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: OrderedDict[str, str] = collections.OrderedDict()

    def remember(self, conversation_id: str, channel: str) -> None:
        self._items[conversation_id] = channel
        self._items.move_to_end(conversation_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, conversation_id: str) -> str:
        channel = self._items.get(conversation_id)
        if channel is None:
            return ""
        self._items.move_to_end(conversation_id)
        return channel

    def __len__(self) -> int:
        return len(self._items)


class RedisStreamEventBroker(EventBroker):
    """Publishes each tracker event as a `LogEvent` on the `engage:events` stream.

    `publish` runs synchronously on Rasa's event loop (inside the tracker store's
    `save`), so it only maps the event and hands it to a `BufferedStreamWriter`;
    the writer's background task does the Redis I/O, retries while Redis is away
    and spools to disk what it cannot write before shutdown.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        stream: str = EVENTS_STREAM,
        spool_path: Union[str, Path, None] = None,
        batch_size: int = 200,
        buffer_limit: int = 50_000,
        channel_cache_size: int = 10_000,
        socket_timeout: float = 2.0,
        close_timeout: float = 5.0,
        writer: Optional[BufferedStreamWriter] = None,
    ) -> None:
        if writer is None:
            if not url:
                raise BrokerConfigError(
                    "RedisStreamEventBroker needs a Redis URL: set `url: ${REDIS_URL}` under "
                    "`event_broker` in endpoints.yml and export REDIS_URL"
                )
            writer = BufferedStreamWriter(
                url,
                stream,
                batch_size=batch_size,
                buffer_limit=buffer_limit,
                spool_path=spool_path,
                socket_timeout=socket_timeout,
            )
        self._writer = writer
        # (host, port, db) of the Redis the log lives in; None when only a writer was given.
        self.redis_address: Optional[Tuple[str, int, int]] = _address(url) if url else None
        self._channels = ChannelMemory(channel_cache_size)
        self._close_timeout = close_timeout
        self._started = False
        self._closed = False
        self.published = 0  # records handed to the writer
        self.mapping_errors = 0  # tracker events that needed the fallback record

    @classmethod
    async def from_endpoint_config(
        cls,
        broker_config: Optional[EndpointConfig],
        event_loop: Optional[AbstractEventLoop] = None,
    ) -> Optional["RedisStreamEventBroker"]:
        """Build from `event_broker:` in endpoints.yml (Rasa awaits this at start-up).

        Rasa turns an AttributeError or ImportError raised here into a warning and
        runs without any broker, so configuration problems raise BrokerConfigError.
        """
        if broker_config is None:
            return None
        options = _parse_options(broker_config.kwargs)
        options.setdefault("spool_path", str(default_spool_path()))
        broker = cls(broker_config.url, **options)
        broker.start()
        if not await broker._writer.ping():
            logger.warning(
                "event broker: Redis at %s is not reachable yet; events are buffered "
                "and spooled until it is",
                _redact(broker_config.url),
            )
        return broker

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the background writer (needs a running loop); replays the spool."""
        if not self._started:
            self._writer.start()
            self._started = True

    def is_ready(self) -> bool:
        return self._started and not self._closed

    async def close(self) -> None:
        """Flush what Redis accepts within `close_timeout`, spool the rest."""
        if self._closed:
            return
        self._closed = True
        await self._writer.close(self._close_timeout)

    async def flush(self, timeout: float = 5.0) -> bool:
        return await self._writer.flush(timeout)

    @property
    def writer(self) -> BufferedStreamWriter:
        return self._writer

    # -- publishing ----------------------------------------------------------

    def remember_channel(self, conversation_id: str, channel: str) -> None:
        """Let a connector name the channel before Rasa handles the message.

        The first events of a new session (action_session_start, session_started,
        action_listen) precede the user event, so without this they would carry no
        channel (or the conversation's previous one).
        """
        if conversation_id and channel:
            self._channels.remember(conversation_id, channel)

    def publish(self, event: Dict[str, Any]) -> None:
        """Queue one tracker event (`{"sender_id": ..., **event.as_dict()}`). Never raises."""
        self._submit(self.record_for(event))

    def record_for(self, event: Dict[str, Any]) -> LogEvent:
        """The log record of one tracker event, with the conversation's channel. Never raises.

        bot.stores.FailClosedTrackerStore writes these itself, in the transaction that
        stores the tracker.
        """
        try:
            sender = str(event.get("sender_id") or "")
            channel = event.get("input_channel")
            if channel:
                self._channels.remember(sender, str(channel))
            return from_tracker_event(event, self._channels.get(sender))
        except Exception:  # a malformed event must not break Rasa's tracker save
            logger.exception("event broker: could not map tracker event; writing a minimal record")
            self.mapping_errors += 1
            return _fallback_record(event)

    def fields_for(self, event: Dict[str, Any]) -> Dict[str, str]:
        """`record_for` as the stream entry's fields (what UTF-8 cannot carry replaced)."""
        record = self.record_for(event)
        try:
            fields = record.to_fields()
        except Exception:  # noqa: BLE001 - e.g. metadata json cannot serialise: keep who/what/when
            logger.exception("event broker: could not serialise %s event; writing a minimal record", record.type)
            fields = _fallback_record(event).to_fields()
        return {key: encodable(value) for key, value in fields.items()}

    def publish_log_event(self, event: LogEvent) -> None:
        """Queue a record written by our own code (connectors). Never raises."""
        self._submit(event)

    def _submit(self, record: LogEvent) -> None:
        # After close() the writer spools what it is given (replayed at the next start):
        # a connector may still record a reply_failed while the server shuts down.
        try:
            fields = record.to_fields()  # the writer replaces what UTF-8 cannot carry
        except Exception:
            logger.exception("event broker: could not serialise %s event", record.type)
            return
        if not self._started:
            self._start_if_loop_running()
        self._writer.submit_fields(fields)
        self.published += 1

    def _start_if_loop_running(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # records wait in the buffer until start()
        self.start()


def _parse_options(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(kwargs) - KNOWN_OPTIONS)
    if unknown:
        raise BrokerConfigError(
            f"unknown event_broker option(s) {', '.join(unknown)}; "
            f"known: url, {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    options: Dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None or value == "":
            continue
        try:
            if key in _INT_OPTIONS:
                number = int(value)
                if number < 1:
                    raise ValueError
                options[key] = number
            elif key in _FLOAT_OPTIONS:
                seconds = float(value)
                if seconds <= 0:
                    raise ValueError
                options[key] = seconds
            else:
                options[key] = str(value)
        except (TypeError, ValueError) as exc:
            raise BrokerConfigError(f"event_broker option {key}={value!r} must be a positive number") from exc
    return options


def _fallback_record(event: Mapping[str, Any]) -> LogEvent:
    """Keep at least who/what/when when `from_tracker_event` chokes on an event."""
    try:
        event_type = str(event.get("event") or "unknown")
        sender = str(event.get("sender_id") or "")
    except Exception:
        event_type, sender = "unknown", ""
    return LogEvent(type=event_type, conversation_id=sender, source=SOURCE_RASA, data={"mapping_error": True})


def _address(url: str) -> Tuple[str, int, int]:
    parsed = urllib.parse.urlparse(url)
    try:
        db = int((parsed.path or "/0").lstrip("/") or 0)
    except ValueError:
        db = 0
    return (parsed.hostname or "localhost", parsed.port or 6379, db)


def _redact(url: Optional[str]) -> str:
    if not url or "@" not in url:
        return url or ""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
