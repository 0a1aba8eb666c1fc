"""The dashboard fold on hand-made events: what each event adds, and handover timings."""

from __future__ import annotations

from analytics.dashboards.fold import Open, fold, funnel_delta, funnel_counters
from analytics.schema import FALLBACK, FAQ_ANSWERED, FAQ_UNANSWERED, HANDOVER_REQUESTED, RECOMMENDATION, SOURCE_ACTION, SOURCE_RASA, SOURCE_STAFF, LogEvent

DAY = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
C = "C-00000000000000a1"


def ev(kind: str, at: float, channel: str = "socketio", who: str = C, source: str = SOURCE_ACTION, **data: object) -> LogEvent:
    return LogEvent(kind, who, source, channel, at, data=dict(data))


def test_messages_count_per_channel_and_hour_and_first_messages_make_new_customers() -> None:
    events = [ev("user", DAY, source=SOURCE_RASA), ev("user", DAY + 10, source=SOURCE_RASA),
              ev("user", DAY + 20, "whatsapp", who="C-2", source=SOURCE_RASA), ev("user", DAY + 30, who="C-old", source=SOURCE_RASA)]
    effects = fold(events, {}, {}, seen={"C-old"})
    day = effects.counters["2026-05-28"]
    assert day["msg|socketio|20"] == 3 and day["msg|whatsapp|20"] == 1
    assert day["new|socketio"] == 1 and day["new|whatsapp"] == 1  # C-old wrote before
    assert effects.seen == {C, "C-2"}
    assert effects.members[("active", "2026-05-28")] == {C, "C-2", "C-old"}
    assert effects.members[("active:whatsapp", "2026-05-28")] == {"C-2"}


def test_faq_fallback_recommendation_and_handover_counts() -> None:
    events = [ev(FAQ_ANSWERED, DAY), ev(FAQ_UNANSWERED, DAY), ev(FALLBACK, DAY), ev(RECOMMENDATION, DAY, score=9),
              ev(RECOMMENDATION, DAY, score=11), ev(RECOMMENDATION, DAY, score=True),
              ev(HANDOVER_REQUESTED, DAY, team="support", trigger="misses", ticket=True, queued=True),
              ev(HANDOVER_REQUESTED, DAY + 5, team="support", trigger="misses", queued=True, already_waiting=True),
              ev(HANDOVER_REQUESTED, DAY + 6, who="C-3", queued=False)]
    effects = fold(events, {}, {})
    day = effects.counters["2026-05-28"]
    assert day["faq|answered|socketio"] == 1 and day["faq|unanswered|socketio"] == 1 and day["fallback|socketio"] == 1
    assert day["rec|9"] == 1 and "rec|11" not in day and "rec|True" not in day  # out of range and booleans are not scores
    assert day["handover|misses|socketio"] == 1  # asked again while waiting, or never queued: not a new request
    assert day["ticket|support"] == 1
    assert effects.members[("handed", "2026-05-28")] == {C}
    assert effects.opened[C] == Open(DAY, "support")


def test_service_times_run_from_the_request_to_the_claim_first_reply_and_resolution() -> None:
    requested = ev(HANDOVER_REQUESTED, DAY, team="support", trigger="asked_for_person", queued=True, requested_at=DAY - 4)
    claimed = ev("handover_claimed", DAY + 56, source=SOURCE_STAFF, team="support", by="ada")
    reply = LogEvent("bot", C, SOURCE_RASA, "socketio", DAY + 96, text="Hi", metadata={"author": {"role": "agent", "id": "ada", "name": "Ada"}})
    second = LogEvent("bot", C, SOURCE_RASA, "socketio", DAY + 150, text="More", metadata={"author": {"role": "agent", "id": "ada"}})
    bot = ev("bot", DAY + 97, source=SOURCE_RASA)
    resolved = ev("handover_resolved", DAY + 296, source=SOURCE_STAFF, outcome="solved", by="ada")
    csat = ev("csat", DAY + 300, score=4, agent={"id": "ada", "name": "Ada"})
    effects = fold([requested, claimed, reply, bot, second, resolved, csat], {}, {})
    day = effects.counters["2026-05-28"]
    assert (day["wait|support|sum"], day["wait|support|n"]) == (60, 1)  # from requested_at, not the log time
    assert (day["frt|support|ada|sum"], day["frt|support|ada|n"]) == (100, 1)  # the first reply only
    assert (day["res|support|ada|sum"], day["res|support|ada|n"]) == (300, 1)
    assert day["resolved|support|solved"] == 1
    assert day["csat|4|support"] == 1 and day["csat_agent|ada|sum"] == 4
    assert effects.opened == {C: None} and effects.handled_by == {C: "support"}


def test_a_transfer_to_another_team_counts_the_wait_against_the_team_that_claims() -> None:
    start = {C: Open(DAY, "support")}
    events = [ev("handover_claimed", DAY + 10, source=SOURCE_STAFF, team="support", by="ada"),
              ev("handover_transferred", DAY + 20, source=SOURCE_STAFF, to_team="sales", by="ada"),
              ev("handover_claimed", DAY + 50, source=SOURCE_STAFF, team="sales", by="sam")]
    day = fold(events, start, {}).counters["2026-05-28"]
    assert day["wait|support|sum"] == 10 and day["wait|sales|sum"] == 50


def test_a_handover_not_in_the_log_has_no_waiting_time_made_up() -> None:
    # The funnel's sales handover is queued by the records projection without a log entry.
    events = [ev("handover_claimed", DAY, source=SOURCE_STAFF, team="sales", by="sam")]
    day = fold(events, {}, {}).counters["2026-05-28"]
    assert day["wait|sales|sum"] == 0 and day["wait|sales|n"] == 1


def test_funnel_counters_count_entries_moves_and_time_in_the_stage_left() -> None:
    path = [(DAY, "visitor"), (DAY + 3600, "suspect"), (DAY + 86400, "prospect")]
    counted = funnel_counters(path)
    assert counted["2026-05-28"] == {"stage_in|visitor": 1, "stage_in|suspect": 1, "stage_time|visitor|sum": 3600,
                                     "stage_time|visitor|n": 1, "stage_move|visitor|suspect": 1}
    assert counted["2026-05-29"]["stage_time|suspect|sum"] == 86400 - 3600
    assert funnel_delta(path, path) == {}
    undone = funnel_delta(path, path[:2])
    assert undone == {"2026-05-29": {"stage_in|prospect": -1, "stage_time|suspect|sum": -(86400 - 3600), "stage_time|suspect|n": -1,
                                     "stage_move|suspect|prospect": -1}}
