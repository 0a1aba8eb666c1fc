"""The analytics service in the running stack: every turn reaches the customer's record within moments."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import redis
import requests

from analytics.records.store import state_key
from scripts.stack import Stack
from tests.e2e.conftest import eventually


def test_a_conversation_reaches_the_customers_record_and_the_lag_drains(
    stack: Stack, store: redis.Redis, chat: Callable[..., List[Dict[str, Any]]], sender: str
) -> None:
    chat(sender, "hi")
    chat(sender, "how do I connect Slack?")
    chat(sender, "the Insights charts are great, especially the new export")

    def record() -> Optional[Dict[str, Any]]:
        found = requests.get(f"{stack.analytics_url}/health", timeout=10).json()
        if found["lag"]["entries"] or not store.exists(state_key(sender)):
            return None
        state = json.loads(store.get(state_key(sender)))
        return state["record"] if state["record"]["counts"]["messages"] == 3 else None

    kept = eventually(record, "the analytics service to fold the conversation", timeout=30)
    assert kept["counts"]["faq_answered"] == 1 and kept["counts"]["feedback"] == 1
    assert list(kept["channels"]) == ["rest"] and kept["channels"]["rest"]["messages"] == 3
    health = requests.get(f"{stack.analytics_url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["lag"]["dead_letters"] == 0
    assert stack.analytics_lag() == health["lag"]
