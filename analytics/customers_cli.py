"""Staff commands for customer identities (action runtime): `python -m analytics.customers_cli ...`.

    identities CUSTOMER            the channel identities linked to a customer, with how each was proven
    find KIND:VALUE                which customer an identity belongs to (e.g. email:dana@acme.example)
    unlink CUSTOMER KIND:VALUE     remove one identity; its next message starts a new customer.
                                   Recorded in the interaction log as identity_unlinked, with
                                   --by (default: your login name) and --reason.

REDIS_URL selects the Redis (default: the one `make run` starts, redis://127.0.0.1:6390/0).
Exit status: 0 done, 1 not found, 2 bad input or Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import sys
from typing import Optional, Sequence

import redis.asyncio

from analytics.customers import CustomerDirectory, Identity, IdentityError, close
from analytics.redis_connect import redis_url
from analytics.schema import EVENTS_STREAM, IDENTITY_UNLINKED, SOURCE_STAFF, LogEvent

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics.customers_cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("identities").add_argument("customer")
    commands.add_parser("find").add_argument("identity", metavar="KIND:VALUE")
    unlink = commands.add_parser("unlink")
    unlink.add_argument("customer")
    unlink.add_argument("identity", metavar="KIND:VALUE")
    unlink.add_argument("--by", default=login_name(), help="who unlinks it, for the record (default: %(default)s)")
    unlink.add_argument("--reason", default="", help="why, for the record")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        print(f"error: cannot reach Redis at {redis_url()} ({exc}); is the assistant running (make run)?", file=sys.stderr)
        return 2


def login_name() -> str:
    """Who is at the keyboard, for the record (staff commands)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


async def _run(args: argparse.Namespace) -> int:
    client = redis.asyncio.Redis.from_url(redis_url(), socket_timeout=5, socket_connect_timeout=5)
    try:
        directory = CustomerDirectory(client)
        if args.command == "identities":
            linked = await directory.identities(args.customer)
            profile = await directory.profile(args.customer)
            if args.json:
                print(json.dumps({"customer": args.customer, **profile, "identities": [
                    {"identity": str(i.identity), "evidence": i.evidence, "linked_at": i.linked_at} for i in linked]}, indent=2))
            else:
                if "merged_into" in profile:
                    print(f"{args.customer} was merged into {profile['merged_into']}")
                for item in linked:
                    print(f"{str(item.identity):50} {item.evidence:16} linked {_when(item.linked_at)}")
            return 0 if linked or profile.get("merged_into") else 1
        if args.command == "find":
            owner = await directory.owner(Identity.parse(args.identity))
            print(json.dumps({"identity": args.identity, "customer": owner}) if args.json else (owner or "no customer has this identity"))
            return 0 if owner else 1
        identity = Identity.parse(args.identity)
        record = LogEvent(
            type=IDENTITY_UNLINKED,
            conversation_id=args.customer,
            source=SOURCE_STAFF,
            channel=identity.kind,
            data={"identity": str(identity), "by": args.by, "reason": args.reason},
        )
        removed = await directory.unlink(args.customer, identity, record=(EVENTS_STREAM, record.to_fields()))
        print(f"unlinked {args.identity} from {args.customer}" if removed else f"{args.identity} is not linked to {args.customer}")
        return 0 if removed else 1
    finally:
        await close(client)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
