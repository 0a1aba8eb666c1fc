"""`python -m analytics ideas ...` and `faq-gaps`: idea mining from the command line.

    ideas cluster --input FILE.jsonl [--json]   cluster any file of {"id", "text"} lines with the
                                                production method and settings (no Redis needed)
    ideas themes [--since WHEN] [--area TEXT] [--json] [--limit N]
                                                themes the service keeps, highest demand first
    ideas show THEME [--json]                   one theme: demand explained, trend, areas, quotes, history
    ideas status THEME STATUS [--note TEXT] [--by NAME]
                                                staff set new | under review | planned | shipped | declined
                                                (declined needs --note: the reason requesters are told)
    ideas export [--format csv|json] [--since WHEN] [--area TEXT]
    ideas recluster [--space needs|questions] [--wait SECONDS]
                                                full re-clustering by the service, theme ids kept
    ideas outbox [--json] [--retry JOB]         notifications to requesters: waiting, sent, failed (why);
                                                send a failed one again
    faq-gaps [--json] | faq-gaps accept FQ-N --answer TEXT [--file FILE] [--question TEXT]

WHEN is a date (2026-11-01) or an age (30d, 12h).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from analytics.ideas.config import load_settings
from analytics.ideas.errors import IdeasError, IdeasInputError
from analytics.ideas.inputs import read_ideas
from analytics.ideas.mining import Clustering, Encoder, Labeller, cluster_ideas


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    ideas = commands.add_parser("ideas", help="idea mining: themes of what customers ask for")
    sub = ideas.add_subparsers(dest="ideas_command", required=True)
    cluster = sub.add_parser("cluster", help="cluster a JSONL file of {\"id\", \"text\"} with the production settings")
    cluster.add_argument("--input", required=True, type=Path, help="one JSON object per line: {\"id\": ..., \"text\": ...}")
    cluster.add_argument("--json", action="store_true", help='print {"clusters": [{"id", "label", "members", "areas"}], "unclustered": [...]}')
    themes = sub.add_parser("themes", help="themes kept by the analytics service, highest demand first")
    themes.add_argument("--json", action="store_true")
    themes.add_argument("--limit", type=int, default=20)
    themes.add_argument("--since", help="count only what was said since then: a date (2026-11-01) or an age (30d, 12h)")
    themes.add_argument("--area", help="only themes in a product area containing this text (e.g. Insights, Slack)")
    show = sub.add_parser("show", help="one theme: demand explained, areas, quotes")
    show.add_argument("theme")
    show.add_argument("--json", action="store_true")
    status = sub.add_parser("status", help="set a theme's status (staff decision, logged; shipped/declined tell opted-in requesters)")
    status.add_argument("theme")
    status.add_argument("status", help="new, under review, planned, shipped or declined")
    status.add_argument("--note", default="", help="what changed, or why declined (requesters are told)")
    status.add_argument("--by", default=None, help="who decides (default: your login name)")
    export = sub.add_parser("export", help="themes as CSV or JSON on standard output")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--since")
    export.add_argument("--area")
    recluster = sub.add_parser("recluster", help="ask the analytics service for a full re-clustering (theme ids kept)")
    recluster.add_argument("--space", choices=["needs", "questions"], default="needs")
    recluster.add_argument("--by", default=None)
    recluster.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the service's result (0: do not wait)")
    outbox = sub.add_parser("outbox", help="notifications to requesters and what became of them")
    outbox.add_argument("--json", action="store_true")
    outbox.add_argument("--retry", metavar="JOB", help="send a failed notification (or one a crash left sending) again")
    outbox.add_argument("--by", default=None)
    gaps = commands.add_parser("faq-gaps", help="themes of questions the FAQ could not answer, with a proposed entry")
    gaps.add_argument("--json", action="store_true")
    gaps_sub = gaps.add_subparsers(dest="gaps_command")
    accept = gaps_sub.add_parser("accept", help="write a gap's proposed entry into knowledge_base/faqs/ and rebuild the index")
    accept.add_argument("gap", help="the gap's id (FQ-n)")
    accept.add_argument("--answer", required=True, help="the answer customers will get")
    accept.add_argument("--question", help="the question as it should read (default: the proposed one)")
    accept.add_argument("--file", type=Path, help="the FAQ file to add it to (default: knowledge_base/faqs/gaps.yml)")
    accept.add_argument("--by", default=None)
    accept.add_argument("--no-build", action="store_true", help="write the entry but do not rebuild the index")


def parse_when(text: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """A date (2026-11-01, UTC) or an age (30d, 12h, 90m) as a timestamp; IdeasInputError otherwise."""
    if not text:
        return None
    now = time.time() if now is None else now
    age = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text)
    if age:
        return now - float(age.group(1)) * {"d": 86400, "h": 3600, "m": 60}[age.group(2)]
    try:
        day = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise IdeasInputError(f"--since {text!r}: expected a date like 2026-11-01 or an age like 30d or 12h") from None
    return (day if day.tzinfo else day.replace(tzinfo=dt.timezone.utc)).timestamp()


async def command(client: Any, records: Any, args: argparse.Namespace, out: Optional[TextIO] = None, encoder: Optional[Encoder] = None,
                  err: Optional[TextIO] = None) -> int:
    """Commands that read or write Redis. Exit status 0; 1 for a theme `show` does not know; 2 for bad input."""
    from analytics.ideas.areas import AreaMatcher, load_catalogue
    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.report import describe_theme, describe_themes, summaries
    from analytics.ideas.themes import QUESTIONS, theme_store

    out, err = out or sys.stdout, err or sys.stderr
    settings = load_settings()
    store = theme_store(client, settings, encoder)
    name = getattr(args, "ideas_command", None)
    if getattr(args, "command", "ideas") == "faq-gaps":
        from analytics.ideas import gaps

        return await gaps.command(store, records, args, out, err)
    if name == "status":
        return await set_status(store, args, out, err)
    if name == "recluster":
        from analytics.ideas.recluster import request

        return await request(client, args, out, err)
    if name == "outbox":
        from analytics.customers_cli import login_name
        from analytics.ideas.notify import SENDING, Outbox

        if getattr(args, "retry", None):
            try:
                job = await Outbox(client).retry(args.retry, args.by or login_name(), time.time())
            except ValueError as exc:
                print(f"error: {exc}", file=err)
                return 2
            crashed = " (it was left sending by a crash: it may have reached the customer already)" if any(h.get("state") == SENDING for h in job["history"][-2:-1]) else ""
            print(f"{job['id']} will be sent again within moments{crashed}", file=out)
            return 0
        jobs = await Outbox(client).jobs()
        if args.json:
            print(json.dumps(jobs, indent=2, ensure_ascii=False), file=out)
        else:
            print("\n".join(f"{job['id']:48} {job['state']:8} {job.get('channel') or '-':10} {job.get('reason') or ''}" for job in jobs) or "no notifications", file=out)
        return 0
    since = parse_when(getattr(args, "since", None))
    rows = await summaries(store, records, settings.demand, CtfidfLabeller(), AreaMatcher(load_catalogue()), since=since, area=getattr(args, "area", None))
    if name == "themes":
        rows = rows[: args.limit]
        print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else (describe_themes(rows) if rows else "no themes yet"), file=out)
        return 0
    if name == "export":
        write_export(rows, args.format, out)
        print(f"{len(rows)} themes", file=err)
        return 0
    if name == "show" and args.theme.startswith("FQ-"):
        rows = await summaries(store, records, settings.demand, CtfidfLabeller(), AreaMatcher(load_catalogue()), space=QUESTIONS)
    row = next((row for row in rows if row["id"] == args.theme), None)
    if row is None:
        known = ", ".join(sorted(r["id"] for r in rows)[:20]) or "none yet"
        print(f"no theme {args.theme!r} (known: {known})", file=err)
        return 1
    print(json.dumps(row, indent=2, ensure_ascii=False) if args.json else describe_theme(row), file=out)
    return 0


async def set_status(store: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Write `theme_status_set` to the log (the service applies it and queues notifications)."""
    from analytics.customers_cli import login_name
    from analytics.ideas.themes import CLOSING, STATUSES, status_name
    from analytics.schema import EVENTS_STREAM, SOURCE_STAFF, THEME_STATUS_SET, LogEvent

    status = status_name(args.status)
    if status is None:
        print(f"error: unknown status {args.status!r}; use one of: {', '.join(STATUSES)}", file=err)
        return 2
    theme = await store.theme(args.theme)
    if theme is None or theme.get("merged_into"):
        known = sorted((t["id"] for t in await store.themes()), key=lambda ident: (len(ident), ident))
        hint = f" (it was merged into {theme['merged_into']} by a re-clustering)" if theme else ""
        print(f"error: no theme {args.theme!r}{hint}; known themes: {', '.join(known[:30]) or 'none yet'}"
              + (" ..." if len(known) > 30 else "") + " (see `python -m analytics ideas themes`)", file=err)
        return 2
    note = " ".join(args.note.split())
    if status == "declined" and not note:
        print("error: say why with --note \"...\": requesters who asked to hear back are told the reason", file=err)
        return 2
    by = args.by or login_name()
    event = LogEvent(THEME_STATUS_SET, f"theme:{theme['id']}", SOURCE_STAFF, data={"theme": theme["id"], "status": status, "note": note, "by": by})
    await store.client.xadd(EVENTS_STREAM, event.to_fields())
    told = " opted-in requesters will be told once, on the channel they last used" if status in CLOSING and theme.get("space", "needs") == "needs" else ""
    print(f"{theme['id']} marked {status} by {by} (event {event.event_id}); the analytics service applies it within moments;{told}".rstrip(";"), file=out)
    return 0


EXPORT_FIELDS = ["id", "label", "status", "demand_score", "customers", "mentions", "votes", "this_period", "last_period",
                 "channels", "areas", "kinds", "top_quote", "top_quote_link", "created_at"]


def export_rows(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for row in rows:
        d, t = row["demand"], row["trend"]
        quote = row["quotes"][0] if row["quotes"] else {}
        out.append({
            "id": row["id"], "label": row["label"], "status": row["status"], "demand_score": d["score"], "customers": d["customers"],
            "mentions": d["mentions"], "votes": d["votes"], "this_period": t["this_period"], "last_period": t["last_period"],
            "channels": ";".join(f"{k}={v}" for k, v in sorted(d["channels"].items())), "areas": ";".join(row["areas"]),
            "kinds": ";".join(f"{k}={v}" for k, v in row["kinds"].items()), "top_quote": quote.get("text", ""),
            "top_quote_link": quote.get("link", ""), "created_at": row["created_at"],
        })
    return out


def write_export(rows: List[Dict[str, Any]], fmt: str, out: TextIO) -> None:
    flat = export_rows(rows)
    if fmt == "json":
        print(json.dumps(flat, indent=2, ensure_ascii=False), file=out)
        return
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)


def run(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None, encoder: Optional[Encoder] = None, labeller: Optional[Labeller] = None) -> int:
    """Exit status: 0 done, 2 bad input or settings (the message names the line)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = load_settings()
        ideas, warnings = read_ideas(args.input, settings.max_chars)
        for warning in warnings:
            print(f"warning: {warning}", file=err)
        if encoder is None:
            from knowledge_base.encoder import MiniLMEncoder

            encoder = MiniLMEncoder()
        from analytics.ideas.areas import AreaMatcher, load_catalogue
        from analytics.ideas.labels import CtfidfLabeller

        result = cluster_ideas(ideas, encoder, settings, labeller or CtfidfLabeller(), AreaMatcher(load_catalogue()))
    except IdeasError as exc:
        print(f"error: {exc}", file=err)
        return 2
    print(json.dumps(result.as_dict(), ensure_ascii=False) if args.json else describe(result), file=out)
    return 0


def describe(result: Clustering) -> str:
    lines = [f"{len(result.themes)} themes, {sum(len(t.members) for t in result.themes)} ideas in them, {len(result.unclustered)} unclustered"]
    for theme in result.themes:
        where = ", ".join(f"{area} ({count})" for area, count in list(theme.areas.items())[:3])
        lines.append(f"{theme.id:>5}  {len(theme.members):4}  {theme.label}" + (f"   [{where}]" if where else ""))
        lines.extend(f"             \"{quote[:100]}\"" for quote in theme.quotes[:2])
    if result.unclustered:
        shown = ", ".join(result.unclustered[:20]) + (" ..." if len(result.unclustered) > 20 else "")
        lines.append(f"unclustered: {shown}")
    return "\n".join(lines)
