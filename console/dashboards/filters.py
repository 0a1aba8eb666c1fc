"""The date range and channel filters every dashboard takes, checked before anything is read."""

from __future__ import annotations

import datetime as dt
import re
from typing import Mapping, Optional

from analytics.dashboards.charts import Window
from console.errors import Refused

MAX_DAYS = 400  # a year and a bit: enough for "this year vs last month", small enough to read in one go
DEFAULT_DAYS = 30
CHANNEL = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


def parse_day(text: str, what: str) -> dt.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Refused(400, "bad_date", f"'{what}' must be a date like 2026-11-01 (got {text[:40]!r}).") from None


def window(query: Mapping[str, str], today: dt.date) -> Window:
    """`from` and `to` (inclusive, UTC days; default the last 30 days) and an optional `channel`."""
    raw_to, raw_from = (query.get("to") or "").strip(), (query.get("from") or "").strip()
    end = parse_day(raw_to, "to") if raw_to else today
    start = parse_day(raw_from, "from") if raw_from else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise Refused(400, "bad_range", f"'from' ({start}) is after 'to' ({end}); swap them.")
    if (end - start).days + 1 > MAX_DAYS:
        raise Refused(400, "range_too_long", f"Choose at most {MAX_DAYS} days (asked for {(end - start).days + 1}); narrow 'from' and 'to'.")
    channel: Optional[str] = (query.get("channel") or "").strip() or None
    if channel is not None and not CHANNEL.match(channel):
        raise Refused(400, "bad_channel", "'channel' is a channel name such as socketio, whatsapp, telegram, portal or rest.")
    return Window(start, end, channel)
