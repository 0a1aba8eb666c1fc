"""A chart's table as CSV: the same rows the chart draws, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any, List, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """Text a spreadsheet will not run as a formula (customers' words end up in these tables)."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START) and not _number(text):
        return "'" + text
    return text


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(c) for c in columns])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def flat(rows: List[List[Any]]) -> List[List[Any]]:
    """Lists and dicts inside cells as 'a=1; b=2' text."""
    def one(value: Any) -> Any:
        if isinstance(value, dict):
            return "; ".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return "; ".join(str(v) for v in value)
        return value

    return [[one(v) for v in row] for row in rows]
