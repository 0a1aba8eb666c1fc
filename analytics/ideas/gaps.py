"""FAQ gaps: themes of questions the FAQ could not answer, each with a proposed entry (the question
nearest the theme's centre, tidied, and the other ways customers asked it as phrasings), and
`faq-gaps accept` writing one into knowledge_base/faqs/ and rebuilding the index.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, TextIO

import yaml

from analytics.ideas.errors import IdeasError

PHRASINGS = 6
DEFAULT_FILE = "gaps.yml"
HEADER = "# Entries accepted from FAQ gaps (python -m analytics faq-gaps accept): questions customers asked that had no answer.\n"


class GapError(IdeasError):
    """An accept that cannot be done (unknown gap, an entry the knowledge base refuses); nothing is written."""


def tidy_question(text: str) -> str:
    """One line, a capital first letter and a question mark."""
    line = " ".join(text.split()).strip(" .!")
    if not line:
        return line
    line = line[0].upper() + line[1:]
    return line if line.endswith("?") else line + "?"


def proposal(row: Mapping[str, Any]) -> Dict[str, Any]:
    """The proposed FAQ entry of a gap theme: question and phrasings (distinct, nearest the centre first)."""
    texts = [quote["text"] for quote in row["quotes"]]
    question = tidy_question(texts[0]) if texts else ""
    seen = {question.lower().rstrip("?")}
    phrasings: List[str] = []
    for text in texts[1:]:
        line = " ".join(text.split())
        key = line.lower().rstrip("?!. ")
        if key and key not in seen:
            seen.add(key)
            phrasings.append(line)
    return {
        "id": row["id"], "status": row["status"], "label": row.get("label", ""), "asked_by": row["demand"]["customers"], "mentions": row["demand"]["mentions"],
        "areas": list(row.get("areas", {})), "proposed": {"question": question, "alternatives": phrasings},
        "quotes": row["quotes"],
    }


def entry_id(question: str, taken: Sequence[str]) -> str:
    words = re.findall(r"[a-z0-9]+", question.lower())
    base = "gap-" + "-".join(words[:8]) if words else "gap"
    ident, number = base[:90], 2
    while ident in taken:
        ident, number = f"{base[:86]}-{number}", number + 1
    return ident


def write_entry(directory: Path, target: Path, entry: Dict[str, Any]) -> None:
    """Append `entry` to `target` (created with a header) and check the whole folder loads; on any
    problem the file is left as it was and GapError says what the knowledge base refused."""
    from knowledge_base.errors import FaqValidationError
    from knowledge_base.loader import load_directory

    before = target.read_text(encoding="utf-8") if target.exists() else None
    block = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=100)
    text = (before if before is not None else HEADER)
    text = text + ("" if text.endswith("\n") else "\n") + "\n" + block
    handle, temporary = tempfile.mkstemp(dir=str(target.parent), prefix=".gap-", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, target)
    try:
        load_directory(directory)
    except FaqValidationError as exc:
        if before is None:
            target.unlink()
        else:
            target.write_text(before, encoding="utf-8")
        raise GapError(f"the knowledge base refused the entry, nothing was added:\n{exc}") from exc


async def command(store: Any, records: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from analytics.ideas.areas import AreaMatcher, load_catalogue
    from analytics.ideas.config import load_settings
    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.report import summaries
    from analytics.ideas.themes import QUESTIONS

    rows = await summaries(store, records, load_settings().demand, CtfidfLabeller(), AreaMatcher(load_catalogue()), space=QUESTIONS, quotes=PHRASINGS + 1)
    gaps = [proposal(row) for row in rows]
    if getattr(args, "gaps_command", None) != "accept":
        open_gaps = [gap for gap in gaps if gap["status"] not in ("shipped", "declined")]
        if args.json:
            print(json.dumps(open_gaps, indent=2, ensure_ascii=False), file=out)
        elif not open_gaps:
            print("no FAQ gaps: every question customers asked had an answer (or was accepted already)", file=out)
        else:
            for gap in open_gaps:
                print(f"{gap['id']}  asked by {gap['asked_by']} ({gap['mentions']} times)  {gap['proposed']['question']}", file=out)
                for phrasing in gap["proposed"]["alternatives"]:
                    print(f"          also: {phrasing}", file=out)
            print("accept one with: python -m analytics faq-gaps accept FQ-N --answer \"...\"", file=out)
        return 0
    return await accept(store, gaps, args, out, err)


async def accept(store: Any, gaps: List[Dict[str, Any]], args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from analytics.customers_cli import login_name
    from analytics.schema import EVENTS_STREAM, SOURCE_STAFF, THEME_STATUS_SET, LogEvent
    from knowledge_base.loader import load_directory
    from knowledge_base.service import faq_directory, index_directory

    gap = next((gap for gap in gaps if gap["id"] == args.gap), None)
    if gap is None:
        print(f"error: no FAQ gap {args.gap!r}; known: {', '.join(g['id'] for g in gaps) or 'none yet'} (see `python -m analytics faq-gaps`)", file=err)
        return 2
    if gap["status"] == "shipped":
        print(f"error: {gap['id']} was accepted already ({gap['status']})", file=err)
        return 2
    answer = " ".join(args.answer.split())
    if len(answer) < 10:
        print("error: --answer must be the answer customers will read (at least a sentence)", file=err)
        return 2
    directory = faq_directory()
    taken = [entry.id for entry in load_directory(directory)]
    question = tidy_question(args.question) if args.question else gap["proposed"]["question"]
    entry: Dict[str, Any] = {"id": entry_id(question, taken), "question": question}
    if gap["proposed"]["alternatives"]:
        entry["alternatives"] = gap["proposed"]["alternatives"]
    entry["answer"] = answer
    target = args.file or directory / DEFAULT_FILE
    try:
        write_entry(directory, target, entry)
    except GapError as exc:
        print(f"error: {exc}", file=err)
        return 2
    print(f"added {entry['id']} to {target}", file=out)
    by = args.by or login_name()
    event = LogEvent(THEME_STATUS_SET, f"theme:{gap['id']}", SOURCE_STAFF, data={"theme": gap["id"], "status": "shipped", "note": f"answered in the FAQ as {entry['id']}", "by": by})
    await store.client.xadd(EVENTS_STREAM, event.to_fields())
    if args.no_build:
        return 0
    from knowledge_base.cli import main as knowledge_base

    status = knowledge_base(["build", str(directory), "--out", str(index_directory())])
    if status != 0:
        print(f"error: the entry is written but the index did not rebuild (exit {status}); run `python -m knowledge_base build {directory} --out {index_directory()}`", file=err)
        return 2
    print(f"index rebuilt in {index_directory()}; the running action server answers the new entry within 30 s (it reloads changed FAQ files)", file=out)
    return 0
