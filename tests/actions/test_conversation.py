"""Reading the tracker: latest text, metadata, in-use context, earlier words."""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.conversation import in_use_context, is_payload, latest_metadata, latest_words, previous_user_text, truncate
from tests.actions.conftest import action_event, bot_event, make_tracker, user_event


def test_in_use_context_takes_only_the_known_keys_and_tidies_values() -> None:
    tracker = make_tracker(
        "the dashboard is slow",
        metadata={"product": " Insights ", "page": "x" * 500, "app_version": 412, "feature": "", "token": "secret", "debug": True},
    )
    context = in_use_context(tracker)
    assert context == {"product": "Insights", "page": "x" * 200, "app_version": 412}


def test_metadata_falls_back_to_the_user_event() -> None:
    tracker = make_tracker("hi", metadata={"product": "Docs"})
    tracker.latest_message.pop("metadata")
    assert latest_metadata(tracker) == {"product": "Docs"}
    assert latest_metadata(make_tracker("hi")) == {}


def test_previous_user_text_skips_payloads_and_the_latest_message() -> None:
    history = [action_event("action_listen"), user_event("how do I export?"), bot_event("Did you mean..."), action_event("action_listen"), user_event("/ask_question")]
    tracker = make_tracker('/ask_question{"faq_id":"x"}', history=history)
    assert previous_user_text(tracker) == "how do I export?"
    assert latest_words(tracker) == "how do I export?"
    assert latest_words(make_tracker("plain words")) == "plain words"
    assert previous_user_text(make_tracker("only message")) is None


def test_helpers() -> None:
    assert is_payload(" /greet") and not is_payload("hi /there")
    assert truncate("abcdef", 4) == "abc…" and truncate("abc", 4) == "abc"
    empty = Tracker("s", {}, {}, [], False, None, {}, None)
    assert latest_words(empty) == "" and in_use_context(empty) == {}
