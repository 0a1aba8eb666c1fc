"""FAQ gaps: unanswered questions grouped, a proposed entry each, and `faq-gaps accept` adding it to the FAQ."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis.asyncio

from analytics.ideas.config import load_settings
from analytics.ideas.gaps import entry_id, proposal, tidy_question
from analytics.ideas.themes import ThemeStore
from analytics.schema import EVENTS_STREAM, FAQ_UNANSWERED, SOURCE_ACTION, LogEvent
from analytics.service import record_store
from knowledge_base.loader import load_directory
from tests.analytics.ideas.support import TableEncoder, entry

ROOT = Path(__file__).resolve().parents[3]
QUESTIONS = {"can i pay in bitcoin": [1, 0], "do you take crypto payments?": [0.97, 0.2], "Bitcoin as a payment method": [0.95, 0.25],
             "is there a dark mode": [0, 1]}


def asked(customer: str, text: str, at: float) -> tuple:
    return entry(LogEvent(FAQ_UNANSWERED, customer, SOURCE_ACTION, "socketio", at, data={"query": text, "reason": "low_score", "score": 0.3}))


def test_a_proposal_is_the_central_question_tidied_with_the_other_phrasings() -> None:
    row = {"id": "FQ-1", "status": "new", "label": "bitcoin", "areas": {}, "demand": {"customers": 3, "mentions": 4},
           "quotes": [{"text": "can i pay in bitcoin"}, {"text": "Can I pay in Bitcoin?"}, {"text": "do you take crypto payments?"}]}
    gap = proposal(row)
    assert gap["proposed"] == {"question": "Can i pay in bitcoin?", "alternatives": ["do you take crypto payments?"]}
    assert tidy_question("  what about  SSO. ") == "What about  SSO?".replace("  ", " ")
    assert entry_id("Can I pay in Bitcoin?", ["gap-can-i-pay-in-bitcoin"]) == "gap-can-i-pay-in-bitcoin-2"


@pytest.fixture
def faq_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "faqs"
    shutil.copytree(ROOT / "knowledge_base" / "faqs", folder)
    monkeypatch.setenv("ENGAGE_FAQ_DIR", str(folder))
    monkeypatch.setenv("ENGAGE_FAQ_INDEX", str(tmp_path / "index"))
    return folder


async def run(client: redis.asyncio.Redis, store: ThemeStore, **given: object) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    args = SimpleNamespace(command="faq-gaps", json=given.pop("json", False), gaps_command=given.pop("gaps_command", None), **given)
    from analytics.ideas import gaps

    code = await gaps.command(store, record_store(client), args, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_gaps_are_listed_and_accepting_one_writes_a_valid_entry_and_marks_the_gap(client: redis.asyncio.Redis, faq_copy: Path) -> None:
    store = ThemeStore(client, TableEncoder(QUESTIONS), load_settings())
    await store.apply_batch([asked("C-1", "can i pay in bitcoin", 1.0), asked("C-2", "do you take crypto payments?", 2.0),
                             asked("C-3", "Bitcoin as a payment method", 3.0), asked("C-4", "is there a dark mode", 4.0)])
    code, out, _ = await run(client, store, json=True)
    gaps = json.loads(out)
    assert code == 0 and [g["id"] for g in gaps] == ["FQ-1", "FQ-2"]
    assert gaps[0]["asked_by"] == 3 and gaps[0]["proposed"]["question"].endswith("?") and len(gaps[0]["proposed"]["alternatives"]) == 2

    before = {e.id for e in load_directory(faq_copy)}
    code, _, err = await run(client, store, gaps_command="accept", gap="FQ-9", answer="We take cards and bank transfer.", question=None, file=None, by="pat", no_build=True)
    assert code == 2 and "no FAQ gap 'FQ-9'" in err
    code, _, err = await run(client, store, gaps_command="accept", gap="FQ-1", answer="no", question=None, file=None, by="pat", no_build=True)
    assert code == 2 and "--answer" in err
    assert {e.id for e in load_directory(faq_copy)} == before and not (faq_copy / "gaps.yml").exists()

    answer = "We take cards (Visa, Mastercard, Amex) and bank transfer on annual plans; not cryptocurrencies."
    code, out, err = await run(client, store, gaps_command="accept", gap="FQ-1", answer=answer, question=None, file=None, by="pat", no_build=True)
    assert code == 0, err
    added = [e for e in load_directory(faq_copy) if e.id not in before]
    assert len(added) == 1 and added[0].answer == answer and len(added[0].alternatives) == 2 and added[0].source.endswith("gaps.yml")
    (_, fields), = await client.xrange(EVENTS_STREAM)
    logged = LogEvent.from_fields(fields)
    assert logged.data == {"theme": "FQ-1", "status": "shipped", "note": f"answered in the FAQ as {added[0].id}", "by": "pat"}
    await store.apply_batch([("9000-0", logged)])
    code, out, _ = await run(client, store, json=True)
    assert [g["id"] for g in json.loads(out)] == ["FQ-2"]  # accepted gaps leave the list


async def test_an_entry_the_knowledge_base_refuses_leaves_the_files_as_they_were(client: redis.asyncio.Redis, faq_copy: Path) -> None:
    store = ThemeStore(client, TableEncoder(QUESTIONS), load_settings())
    await store.apply_batch([asked("C-1", "can i pay in bitcoin", 1.0), asked("C-2", "do you take crypto payments?", 2.0)])
    target = faq_copy / "billing.yml"
    original = target.read_text(encoding="utf-8")
    existing = load_directory(faq_copy)[0].question  # the same question twice is a mistake the loader names
    code, _, err = await run(client, store, gaps_command="accept", gap="FQ-1", answer="We take cards and bank transfer only.", question=existing,
                             file=target, by="pat", no_build=True)
    assert code == 2 and "refused the entry" in err
    assert target.read_text(encoding="utf-8") == original and await client.xlen(EVENTS_STREAM) == 0


@pytest.mark.minilm
async def test_an_accepted_gap_is_answered_from_the_rebuilt_index(client: redis.asyncio.Redis, faq_copy: Path, capsys: pytest.CaptureFixture) -> None:
    from knowledge_base.cli import main as knowledge_base

    store = ThemeStore(client, TableEncoder(QUESTIONS), load_settings())
    await store.apply_batch([asked("C-1", "can i pay in bitcoin", 1.0), asked("C-2", "do you take crypto payments?", 2.0)])
    answer = "We take cards (Visa, Mastercard, Amex) and bank transfer on annual plans; not cryptocurrencies."
    code, out, err = await run(client, store, gaps_command="accept", gap="FQ-1", answer=answer, question=None, file=None, by="pat", no_build=False)
    assert code == 0, err
    assert "index rebuilt" in out
    capsys.readouterr()
    assert knowledge_base(["query", str(faq_copy.parent / "index"), "Can I pay with Bitcoin?", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["decision"] == "answer" and found["answered"][0].startswith("gap-can-i-pay-in-bitcoin")
