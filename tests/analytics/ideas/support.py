"""Small helpers for the idea-mining tests: log events and an encoder of hand-made vectors."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from analytics.schema import IDEA, SOURCE_ACTION, LogEvent


class TableEncoder:
    """Unit vectors looked up by text: themes decided by the test, not by a model."""

    def __init__(self, table: Dict[str, Sequence[float]]) -> None:
        self.table = {text: np.asarray(vector, dtype=np.float32) / np.linalg.norm(vector) for text, vector in table.items()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[text] for text in texts])


def idea(customer: str, text: str, at: float, channel: str = "socketio", reference: str = "IDEA-1") -> Tuple[str, LogEvent]:
    event = LogEvent(IDEA, customer, SOURCE_ACTION, channel, at, data={"reference": reference, "summary": text, "benefit": "", "context": {}})
    return f"{int(at * 1000)}-0", event


def entry(event: LogEvent) -> Tuple[str, LogEvent]:
    return f"{int(event.timestamp * 1000)}-0", event
