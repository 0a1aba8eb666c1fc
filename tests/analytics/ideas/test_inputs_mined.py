"""What the mining reads from the log: ideas, problems, negative or mixed feedback, unanswered questions."""

from __future__ import annotations

import redis.asyncio

from analytics.ideas.config import load_settings
from analytics.ideas.themes import NEEDS, QUESTIONS, Mined, ThemeStore, mined
from analytics.schema import FAQ_UNANSWERED, FEEDBACK, IDEA, PROBLEM, SOURCE_ACTION, LogEvent
from tests.analytics.ideas.support import TableEncoder, entry


def event(kind: str, data: dict, at: float = 1.0, customer: str = "C-1", channel: str = "portal") -> LogEvent:
    return LogEvent(kind, customer, SOURCE_ACTION, channel, at, data=data)


def test_what_is_mined_and_where() -> None:
    assert mined(event(IDEA, {"summary": " add dark mode "})) == Mined(NEEDS, "idea", "add dark mode")
    assert mined(event(PROBLEM, {"description": "the export button does nothing"})) == Mined(NEEDS, "problem", "the export button does nothing")
    assert mined(event(FEEDBACK, {"feedback": "charts are slow", "sentiment": "negative"})) == Mined(NEEDS, "feedback", "charts are slow")
    assert mined(event(FEEDBACK, {"feedback": "nice but slow", "sentiment": "neutral", "mixed": True})) == Mined(NEEDS, "feedback", "nice but slow")
    assert mined(event(FEEDBACK, {"feedback": "love it", "sentiment": "positive"})) is None
    assert mined(event(FAQ_UNANSWERED, {"query": "can I pay in bitcoin", "reason": "low_score"})) == Mined(QUESTIONS, "question", "can I pay in bitcoin")
    # Not a gap: the knowledge base was down, or the chosen suggestion vanished.
    assert mined(event(FAQ_UNANSWERED, {"query": "can I pay in bitcoin", "reason": "load_failed"})) is None
    # Nothing to mine: empty, emoji only.
    assert mined(event(IDEA, {"summary": ""})) is None
    assert mined(event(IDEA, {"summary": "🌙🌙"})) is None


async def test_each_input_joins_its_space_once_with_its_context(client: redis.asyncio.Redis) -> None:
    encoder = TableEncoder({
        "charts are slow": [1, 0, 0], "Insights charts load slowly": [0.95, 0.1, 0],
        "can I pay in bitcoin": [0, 0, 1], "do you take crypto payments": [0.05, 0, 0.98],
    })
    store = ThemeStore(client, encoder, load_settings())
    log = [
        entry(event(FEEDBACK, {"feedback": "charts are slow", "sentiment": "negative", "context": {"product": "insights", "page": "/d/1"}}, 1.0)),
        entry(event(PROBLEM, {"description": "Insights charts load slowly", "reference": "PRB-1"}, 2.0, "C-2", "whatsapp")),
        entry(event(FAQ_UNANSWERED, {"query": "can I pay in bitcoin", "reason": "low_score"}, 3.0, "C-3", "telegram")),
        entry(event(FAQ_UNANSWERED, {"query": "do you take crypto payments", "reason": "low_score"}, 4.0, "C-4")),
        entry(event(FEEDBACK, {"feedback": "love it", "sentiment": "positive"}, 5.0)),
    ]
    assert await store.apply_batch(log) == {}
    await store.apply_batch(log)  # redelivered: nothing changes
    needs, questions = await store.themes(NEEDS), await store.themes(QUESTIONS)
    assert [(t["id"], len(t["members"])) for t in needs] == [("TH-1", 2)]
    assert [(t["id"], len(t["members"])) for t in questions] == [("FQ-1", 2)]
    items = await store.items(needs[0]["members"])
    assert [(i["kind"], i["channel"], i["context"]) for i in items] == [("feedback", "portal", {"product": "insights", "page": "/d/1"}), ("problem", "whatsapp", {})]
    assert items[1]["reference"] == "PRB-1"
