"""python -m console serve | users add|list|remove|passwd (action runtime; Redis from REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from typing import List, Optional, Sequence

from aiohttp import web

from analytics.redis_connect import connect, redis_url
from console.config import load
from console.errors import ConfigError, UserError
from console.users import ROLES, UserStore


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description="Engage staff console")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the console (ENGAGE_CONSOLE_SECRET, ENGAGE_PROACTIVE_TOKEN, ENGAGE_RASA_URL)")
    serve.add_argument("--port", type=int, default=None, help="default: console/config.yml or ENGAGE_CONSOLE_PORT")
    users = commands.add_parser("users", help="staff accounts").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="create an account (asks for the password, or reads it from stdin with --password-stdin)")
    add.add_argument("login")
    add.add_argument("--name", default="")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--teams", default="", help="comma-separated handover teams (default: agent=support, sales=sales, admin=all)")
    add.add_argument("--password-stdin", action="store_true")
    users.add_parser("list", help="every account with role and teams")
    remove = users.add_parser("remove", help="delete an account (its sessions end at once)")
    remove.add_argument("login")
    passwd = users.add_parser("passwd", help="set a new password (every session of the user ends)")
    passwd.add_argument("login")
    passwd.add_argument("--password-stdin", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args.port)
        return asyncio.run(_users(args))
    except (ConfigError, UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("The two passwords differ; run the command again.")
    return first


async def _users(args: argparse.Namespace) -> int:
    client = connect(redis_url(), 5.0, decode_responses=True)
    store = UserStore(client)
    try:
        if args.action == "add":
            teams: List[str] = [t.strip() for t in args.teams.split(",") if t.strip()]
            user = await store.add(args.login, args.name or args.login, args.role, _password(args.password_stdin), teams or None)
            print(f"added {user.login} ({user.name}), role {user.role}, teams {','.join(user.teams) or '-'}")
        elif args.action == "list":
            for user in await store.list():
                print(f"{user.login}\t{user.role}\t{','.join(user.teams) or '-'}\t{user.name}")
        elif args.action == "remove":
            print(f"removed {args.login}" if await store.remove(args.login) else f"there was no user {args.login}")
        elif args.action == "passwd":
            await store.set_password(args.login, _password(args.password_stdin))
            print(f"password of {args.login} changed; their sessions have ended")
        return 0
    finally:
        await client.aclose()


def _serve(port: Optional[int]) -> int:
    from console.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load()
    if not os.environ.get("ENGAGE_PROACTIVE_TOKEN"):
        print("warning: ENGAGE_PROACTIVE_TOKEN is not set: replies cannot reach customers (make run sets it)", file=sys.stderr)
    app = create_app(config)
    web.run_app(app, host=config.host, port=port or config.port, print=lambda *_: None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
