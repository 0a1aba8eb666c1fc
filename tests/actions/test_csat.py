"""action_record_csat: the 1-5 rating after a person helped, logged with the agent who helped."""

from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions import csat
from actions.csat import ActionRecordCsat, csat_score
from analytics.schema import CSAT
from tests.actions.conftest import EventLog, bot_event, make_tracker


def agent_line(text: str, login: str = "dana", name: str = "Dana") -> dict:
    return {**bot_event(text), "metadata": {"author": {"role": "agent", "id": login, "name": name}}}


async def test_a_button_rating_is_logged_with_the_agent(event_log: EventLog) -> None:
    history = [agent_line("Fixed it for you."), {**bot_event("How did we do?"), "metadata": {"author": {"role": "system", "id": "csat", "name": "Quillstack"}}}]
    tracker = make_tracker('/rate_csat{"csat_score":"2"}', "rate_csat", entities=[{"entity": "csat_score", "value": "2"}], history=history)
    dispatcher = CollectingDispatcher()
    assert await ActionRecordCsat(writer=event_log.writer).run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["text"] == csat.THANKS[2]
    (record,) = await event_log.records(CSAT)
    assert record.data == {"score": 2, "agent": {"id": "dana", "name": "Dana"}}


async def test_no_rating_asks_again_and_logs_nothing(event_log: EventLog) -> None:
    dispatcher = CollectingDispatcher()
    await ActionRecordCsat(writer=event_log.writer).run(dispatcher, make_tracker("the support was great", "rate_csat"), {})
    assert dispatcher.messages[0]["text"] == csat.NO_SCORE
    assert await event_log.records(CSAT) == []


def test_scores() -> None:
    assert [csat_score(v) for v in ("5", "a 4 out of 5", "10", "0", None, "12")] == [5, 4, None, None, None, None]
