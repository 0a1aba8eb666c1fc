"""rasa-sdk 3.21 answers, checked by Rasa 3.6 itself: the response schema, the events, the rendered replies.

The actions run here (Python 3.11) through the SDK's real executor; their JSON
is handed to the Rasa runtime (Python 3.10), which validates it with the code
Rasa uses on every action call. This is what makes the SDK's "versions might
not be compatible" warning safe to silence (see actions/server_hooks.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa_sdk.executor import ActionExecutor

from actions.fallback import ActionFallback
from actions.faq import ActionAnswerFaq
from actions.ideas import ActionSubmitIdea
from actions.leads import ActionCorrectLead
from knowledge_base.service import KnowledgeBaseProvider
from tests.actions.conftest import EventLog, entity, make_tracker
from tests.conftest import ROOT
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb

RASA_PYTHON = ROOT / ".venvs" / "rasa" / "bin" / "python"

CHECK = r"""
import asyncio, json, sys
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

results = json.load(sys.stdin)
nlg = TemplatedNaturalLanguageGenerator({"utter_default": [{"text": "Sorry, I didn't quite get that."}]})
out = []
for result in results:
    RemoteAction("checked", None)._validate_action_result(result)
    events = [type(Event.from_parameters(e)).__name__ for e in result["events"]]
    bots = asyncio.run(RemoteAction._utter_responses(result["responses"], CollectingOutputChannel(), nlg, DialogueStateTracker("s", [])))
    out.append({"events": events, "bot": [{"text": b.text, "buttons": b.data.get("buttons")} for b in bots]})
print(json.dumps(out))
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa runtime (.venvs/rasa) is not built")
async def test_rasa_3_6_accepts_what_the_actions_send(tmp_path: Path, event_log: EventLog) -> None:
    faq_dir, config = write_sample_kb(tmp_path)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=config, encoder_factory=BagOfWordsEncoder)
    executor = ActionExecutor()
    for action in (
        ActionAnswerFaq(provider=provider, writer=event_log.writer),
        ActionSubmitIdea(writer=event_log.writer),
        ActionCorrectLead(writer=event_log.writer),
        ActionFallback(writer=event_log.writer),
    ):
        executor.register_action(action)

    calls = [
        ("action_answer_faq", make_tracker("export responses")),
        ("action_submit_idea", make_tracker("saves time", slots={"idea_summary": "dark mode", "idea_benefit": "saves time"})),
        ("action_correct_lead", make_tracker("change my email", "correct_field", entities=[entity("field", "email")])),
        ("action_fallback", make_tracker("blorp", "nlu_fallback")),
    ]
    results: List[Dict[str, Any]] = []
    for name, tracker in calls:
        payload = {"next_action": name, "sender_id": tracker.sender_id, "version": "3.6.21", "domain": {}, "tracker": tracker.current_state()}
        result = await executor.run(json.loads(json.dumps(payload)))
        results.append(result.model_dump())

    checked = subprocess.run(
        [str(RASA_PYTHON), "-c", CHECK],
        input=json.dumps(results),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    faq, idea, correct, fallback = json.loads(checked.stdout.strip().splitlines()[-1])

    assert faq["events"] == []
    assert [b["payload"] for b in faq["bot"][0]["buttons"]] == ['/ask_question{"faq_id":"export-csv"}', '/ask_question{"faq_id":"export-pdf"}']
    assert idea["events"] == ["SlotSet"] * 4 and idea["bot"][0]["text"].startswith("Thank you!")  # the form's slots, no theme offered, the idea's event
    assert correct["events"] == ["SlotSet", "ActiveLoop"]
    assert fallback["events"] == ["UserUtteranceReverted"]
    assert fallback["bot"][0]["text"] == "Sorry, I didn't quite get that."
