"""The analytics service and its commands (action runtime): `python -m analytics ...`.

    serve [--port 5060] [--consumer NAME]   consume the interaction log; GET /health shows the lag
    replay                                  rebuild every derived structure from the log (progress bar)
    customer CUSTOMER [--json]              the customer's record, folded from the log
    explain CUSTOMER [--json]               the engagement scores now, and which events added how much
    leaders DIMENSION [--limit 10]          the top customers of a dimension, or of co_creators
    crm                                     CRM hand-offs waiting and dead-lettered (with reasons)
    stage CUSTOMER STAGE --reason TEXT [--by NAME]  staff move a customer in the funnel (logged)
    privacy export CUSTOMER [--out FILE]    everything held about a customer, as one JSON document
    privacy erase CUSTOMER --reason TEXT    remove it from every store (logged without the data)
    export leads|customers [--format csv|json]  records as rows (the same field names in both formats)
    lag [--json]                            how far the service is behind the log
    ideas cluster --input FILE.jsonl [--json]  cluster {"id", "text"} lines with the production method (no Redis)
    ideas themes [--since] [--area] [--json] | ideas show THEME  idea themes the service keeps, by demand
    ideas status THEME STATUS [--note]      staff set a theme's status (logged; shipped/declined tell requesters)
    ideas export [--format csv|json] | ideas recluster | ideas outbox
    faq-gaps [accept FQ-N --answer TEXT]    unanswered questions as proposed FAQ entries; accept one

REDIS_URL selects the Redis (default: the one `make run` starts, redis://127.0.0.1:6390/0).
Rules: analytics/engagement/rules.yml and analytics/funnel/rules.yml (ENGAGE_ENGAGEMENT_RULES and
ENGAGE_FUNNEL_RULES for other files).
Exit status: 0 done, 1 not found, 2 bad input, bad rules or Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from redis.exceptions import RedisError

from analytics.engagement.rules import DIMENSIONS, RulesError
from analytics.export import export
from analytics.privacy import erase as privacy_erase
from analytics.stream.pause import LeaseLost, ReplayRunning
from analytics.privacy import export as privacy_export
from analytics.engagement.score import value_at
from analytics.crm.config import CrmConfigError
from analytics.crm.outbox import outbox_status
from analytics.customers_cli import login_name
from analytics.funnel.rules import STAGES, FunnelRulesError
from analytics.ideas import cli as ideas_cli
from analytics.ideas.errors import IdeasError
from analytics.schema import EVENTS_STREAM, SOURCE_STAFF, STAGE_SET, LogEvent
from analytics.records.store import CO_CREATORS
from analytics.redis_connect import connect, redis_url
from analytics.replay import replay
from analytics.service import DEFAULT_PORT, LINGER_MS, default_consumer_name, projections, record_store, serve
from analytics.stream.consumer import group_lag

REDIS_TIMEOUT = 5.0
# The service folds the log behind the conversations: on a machine the assistant shares, it
# should take the CPU the conversations leave (bench/load.py --paired, BENCHMARKS.md).
NICE = 10


def linger_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 900:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of milliseconds from 0 to 900 (ENGAGE_ANALYTICS_LINGER_MS)")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="consume the interaction log")
    run.add_argument("--port", type=int, default=int(os.environ.get("ENGAGE_ANALYTICS_PORT", DEFAULT_PORT)))
    run.add_argument("--consumer", default=default_consumer_name(), help="this consumer's name in the group (default: %(default)s)")
    run.add_argument("--nice", type=int, default=int(os.environ.get("ENGAGE_ANALYTICS_NICE", NICE)),
                     help="how much lower this process's CPU priority is than the assistant's (default: %(default)s): "
                          "folding the log waits while a customer waits for an answer; 0 to compete as an equal")
    run.add_argument("--linger-ms", type=linger_ms, default=os.environ.get("ENGAGE_ANALYTICS_LINGER_MS", str(LINGER_MS)),
                     help="after a turn's first events, wait this long for the rest and apply them together "
                          "(default: %(default)s; 0-900: each event is still applied within a second)")
    commands.add_parser("replay", help="rebuild everything derived from the log")
    customer = commands.add_parser("customer", help="a customer's record")
    customer.add_argument("customer")
    customer.add_argument("--json", action="store_true")
    commands.add_parser("lag", help="how far behind the log the service is").add_argument("--json", action="store_true")
    explain = commands.add_parser("explain", help="why a customer scores what they score")
    explain.add_argument("customer")
    explain.add_argument("--json", action="store_true")
    leaders = commands.add_parser("leaders", help="a leaderboard")
    leaders.add_argument("board", choices=[*DIMENSIONS, CO_CREATORS])
    leaders.add_argument("--limit", type=int, default=10)
    commands.add_parser("crm", help="the CRM outbox")
    moving = commands.add_parser("stage", help="move a customer to a funnel stage (staff decision, logged)")
    moving.add_argument("customer")
    moving.add_argument("stage", choices=STAGES)
    moving.add_argument("--reason", required=True, help="why, for the record")
    moving.add_argument("--by", default=login_name(), help="who decides (default: %(default)s)")
    privacy = commands.add_parser("privacy", help="export or erase everything held about a customer")
    privacy.add_argument("action", choices=["export", "erase"])
    privacy.add_argument("customer")
    privacy.add_argument("--out", type=Path, help="write the export here (default: standard output)")
    privacy.add_argument("--reason", default="", help="why (erase): kept in the log")
    privacy.add_argument("--by", default=login_name(), help="who erases (default: %(default)s)")
    exporting = commands.add_parser("export", help="leads or customers as CSV or JSON on standard output")
    exporting.add_argument("kind", choices=["leads", "customers"])
    exporting.add_argument("--format", choices=["csv", "json"], default="csv")
    ideas_cli.add_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)-8s %(name)s  - %(message)s")
    try:
        if args.command == "ideas" and args.ideas_command == "cluster":
            return ideas_cli.run(args)
        if args.command == "serve":
            if args.nice > 0:
                os.nice(args.nice)
            asyncio.run(serve(args.port, args.consumer, linger=args.linger_ms))
            return 0
        return asyncio.run(_command(args))
    except (RulesError, FunnelRulesError, CrmConfigError, IdeasError, ReplayRunning, LeaseLost) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        print(f"error: cannot reach Redis at {redis_url()} ({exc}); is the assistant running (make run)?", file=sys.stderr)
        return 2


async def _command(args: argparse.Namespace) -> int:
    client = connect(redis_url(), REDIS_TIMEOUT, decode_responses=True)
    try:
        if args.command == "replay":
            result = await replay(client, projections(client))
            print(f"replayed {result.entries} entries: {result.applied} applied, {result.dead_lettered} dead-lettered")
            return 0
        if args.command == "privacy":
            if args.action == "export":
                document = json.dumps(await privacy_export(client, args.customer), indent=2, sort_keys=True, ensure_ascii=False)
                if args.out:
                    args.out.write_text(document + "\n", encoding="utf-8")
                else:
                    print(document)
                return 0
            summary = await privacy_erase(client, args.customer, args.by, args.reason)
            nothing = not (summary["keys"] or summary["log_entries"])
            print(f"nothing held about {args.customer}" if nothing else
                  f"erased {args.customer}: {summary['keys']} keys, {summary['log_entries']} log entries, {summary['ids']} ids")
            return 0
        if args.command == "crm":
            print(json.dumps(await outbox_status(client), indent=2))
            return 0
        if args.command == "lag":
            lag = (await group_lag(client)).as_dict()
            print(json.dumps(lag) if args.json else f"{lag['entries']} entries behind ({lag['seconds']:.1f} s), {lag['pending']} pending, {lag['dead_letters']} dead letters")
            return 0
        store = record_store(client)
        if args.command in ("ideas", "faq-gaps"):
            return await ideas_cli.command(client, store, args)
        if args.command == "stage":
            if await store.record(args.customer) is None:
                print(f"no record for {args.customer}", file=sys.stderr)
                return 1
            event = LogEvent(STAGE_SET, args.customer, SOURCE_STAFF, data={"stage": args.stage, "by": args.by, "reason": args.reason})
            await client.xadd(EVENTS_STREAM, event.to_fields())
            print(f"{args.customer} moved to {args.stage} by {args.by} (event {event.event_id}); the service applies it within moments")
            return 0
        if args.command == "export":
            count = await export(store, args.kind, args.format, sys.stdout)
            print(f"{count} {args.kind}", file=sys.stderr)
            return 0
        if args.command == "leaders":
            rows = await store.leaders(args.board, args.limit)
            half_life = store.rules.half_life_seconds
            now = time.time()
            for rank, (name, log) in enumerate(rows, 1):
                print(f"{rank:3}. {name:24} {value_at(log, now, half_life):10.2f}")
            return 0 if rows else 1
        record = await store.record(args.customer)
        while record is not None and "merged_into" in record:
            print(f"{record['customer_id']} was merged into {record['merged_into']}", file=sys.stderr)
            record = await store.record(record["merged_into"])
        if record is None:
            print(f"no record for {args.customer} (is the analytics service running? `python -m analytics lag`)", file=sys.stderr)
            return 1
        if args.command == "explain":
            scores = record["engagement"]
            print(json.dumps(scores, indent=2, sort_keys=True) if args.json else explain_scores(record["customer_id"], scores, time.time()))
            return 0
        print(json.dumps(record, indent=2, sort_keys=True) if args.json else describe(record))
        return 0
    finally:
        await client.aclose()


def describe(record: Dict[str, Any]) -> str:
    """The record for a person to read."""
    counts = record["counts"]
    lines = [
        f"customer {record['customer_id']}",
        f"  seen        {_when(record['first_seen'])} .. {_when(record['last_seen'])} ({counts['sessions']} sessions, {counts['messages']} messages)",
        "  channels    " + (", ".join(f"{name} ({seen['messages']} messages)" for name, seen in sorted(record["channels"].items())) or "none"),
        "  identities  " + (", ".join(record["identities"]) or "none linked"),
        f"  FAQ         {counts['faq_answered']} answered, {counts['faq_suggested']} suggested, {counts['faq_unanswered']} unanswered",
        f"  handovers   {counts['handovers']}" + (f" (last: {record['last_handover']['reason']!r})" if record.get("last_handover") else ""),
    ]
    for title, key in (("feedback", "feedback"), ("ideas", "ideas"), ("problems", "problems")):
        lines.append(f"  {title:11} {counts[key]}")
        lines.extend(f"    - {_when(item['at'])}  {item['text']}" for item in record[key][-5:])
    stages = record["funnel"]
    entered = stages["history"][-1] if stages["history"] else None
    parts = ", ".join(f"{name} {points:g}" for name, points in stages["fit"]["parts"].items())
    lines.append(
        f"  funnel      {stages['stage']}" + (f" since {_when(entered['at'])} ({entered['reason']})" if entered else "")
        + f"; fit {stages['fit']['score']:g}" + (f" ({parts})" if parts else "") + f"; engagement {stages['engagement']:.1f}"
    )
    if stages["sales_handover"]:
        lines.append(f"  sales       handed over {_when(stages['sales_handover']['at'])}: {stages['sales_handover']['reason']}")
    if record["lead"]:
        lines.append("  lead")
        lines.extend(f"    {name:14} {item['value']}" + (f"  (said: {item['said']!r})" if item["said"] != item["value"] else "") for name, item in sorted(record["lead"].items()))
    return "\n".join(lines)


def explain_scores(customer_id: str, scores: Dict[str, Any], now: float) -> str:
    """Each dimension's score today, by path, and the rules and events behind it."""
    half_life = scores["half_life_days"] * 86400.0
    lines = [f"engagement of {customer_id} (half-life {scores['half_life_days']:g} days; rules {scores['rules']})"]
    for name, dimension in scores["dimensions"].items():
        if dimension["log_score"] is None:
            lines.append(f"  {name:14}     -   no signal yet")
            continue
        paths = ", ".join(f"{path} {value_at(log, now, half_life):.1f}" for path, log in dimension["paths"].items() if log is not None)
        lines.append(f"  {name:14} {value_at(dimension['log_score'], now, half_life):6.1f}   ({paths})")
        for rule, item in sorted(dimension["by_rule"].items(), key=lambda kv: -kv[1]["points"]):
            lines.append(f"      {item['points']:6.1f} raw points from {item['count']:3} x {rule}: {item['reason']}")
        latest = dimension["recent"][-3:]
        lines.extend(f"      latest: {_when(c['at'])} +{c['points']:g} {c['rule']} (event {c['event_id']})" for c in latest)
    return "\n".join(lines)


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
