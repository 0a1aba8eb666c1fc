"""`python -m analytics ideas ...`: idea mining from the command line.

    ideas cluster --input FILE.jsonl [--json]   cluster any file of {"id", "text"} lines with the
                                                production method and settings (no Redis needed)
    ideas themes [--json] [--limit N]           themes the service keeps, highest demand first
    ideas show THEME [--json]                   one theme: demand explained, areas, customers' words
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from analytics.ideas.config import load_settings
from analytics.ideas.errors import IdeasError
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
    show = sub.add_parser("show", help="one theme: demand explained, areas, quotes")
    show.add_argument("theme")
    show.add_argument("--json", action="store_true")


async def command(client: Any, records: Any, args: argparse.Namespace, out: Optional[TextIO] = None, encoder: Optional[Encoder] = None) -> int:
    """`ideas themes` and `ideas show` (they read Redis). Exit status 0, or 1 for an unknown theme."""
    from analytics.ideas.areas import AreaMatcher, load_catalogue
    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.report import describe_theme, describe_themes, summaries
    from analytics.ideas.themes import theme_store

    out = out or sys.stdout
    settings = load_settings()
    store = theme_store(client, settings, encoder)
    rows = await summaries(store, records, settings.demand, CtfidfLabeller(), AreaMatcher(load_catalogue()))
    if args.ideas_command == "themes":
        rows = rows[: args.limit]
        print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else (describe_themes(rows) if rows else "no themes yet"), file=out)
        return 0
    row = next((row for row in rows if row["id"] == args.theme), None)
    if row is None:
        known = ", ".join(sorted(r["id"] for r in rows)[:20]) or "none yet"
        print(f"no theme {args.theme!r} (known: {known})", file=sys.stderr)
        return 1
    print(json.dumps(row, indent=2, ensure_ascii=False) if args.json else describe_theme(row), file=out)
    return 0


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
