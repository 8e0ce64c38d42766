"""The ``smslab`` command line: serve the gateway, manage tokens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from aiohttp import web

from .auth import create_token, list_tokens, revoke_token, serve_token
from .config import Config
from .gc_tuning import tune_gc
from .platform import PlatformConfigError
from .ports import port_taken
from .storage import open_storage, shown


async def _with_db(target: str, fn, *args):
    """``fn(storage, *args)`` on the storage ``target`` names (a path, or ``postgresql://…``)."""
    storage = open_storage(target)
    await storage.open()
    try:
        return await fn(storage, *args)
    finally:
        await storage.close()


def _serve(args: argparse.Namespace) -> int:
    from .web.app import create_app

    clock_start = None
    if args.clock_start:
        from .clock import parse_rfc3339

        try:
            clock_start = parse_rfc3339(args.clock_start)
        except ValueError:
            print(f"smslab: --clock-start {args.clock_start!r} is not an RFC 3339 time", file=sys.stderr)
            return 2
    config = Config.from_env(
        clock_start=clock_start,
        host=args.host, port=args.port, db_path=args.db, clock=args.clock, profile=args.profile,
        clock_rate=args.clock_rate, default_region=args.region,
    )
    if config.clock not in ("wall", "virtual"):
        print(f"smslab: --clock must be wall or virtual, not {config.clock!r}", file=sys.stderr)
        return 2
    if port_taken(config.host, config.port):
        print(f"smslab: {config.host}:{config.port} is already in use; stop what runs there or choose another --port",
              file=sys.stderr)
        return 2
    token, new = asyncio.run(_with_db(config.db_path, serve_token, args.workspace, time.time()))
    try:
        app = create_app(config)
    except PlatformConfigError as exc:
        print(f"smslab: {exc}", file=sys.stderr)
        return 2

    async def announce(_app: web.Application) -> None:
        url = f"http://{config.host}:{config.port}/#token={token}"
        print(f"smslab serving on http://{config.host}:{config.port} (database {shown(config.db_path)}, clock {config.clock})", flush=True)
        print(f"Open the console: {url}", flush=True)
        if not new:
            print("(the same admin token as last time: `smslab token revoke` it to get a new one)", flush=True)
        print(f"API token for workspace '{args.workspace}': {token}", flush=True)

    app.on_startup.append(announce)
    tune_gc(config.gc_gen0)
    try:
        web.run_app(app, host=config.host, port=config.port, print=None, access_log=None)
    except PlatformConfigError as exc:  # raised by a platform's start()
        print(f"smslab: {exc}", file=sys.stderr)
        return 2
    return 0


def _token_create(args: argparse.Namespace) -> int:
    token = asyncio.run(_with_db(args.db, create_token, args.workspace, time.time(), args.label, args.admin))
    kind = "Admin token" if args.admin else "Token"
    print(f"{kind} for workspace '{args.workspace}' (shown once, stored hashed):")
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from .clock import to_rfc3339

    tokens = asyncio.run(_with_db(args.db, list_tokens))
    if not tokens:
        print("no tokens")
        return 0
    print(f"{'ID':>4}  {'WORKSPACE':<20} {'ADMIN':<5}  {'LABEL':<12} {'CREATED':<24} FINGERPRINT")
    for t in tokens:
        print(f"{t['id']:>4}  {t['workspace']:<20} {'yes' if t['admin'] else 'no':<5}  {t['label'] or '':<12}"
              f" {to_rfc3339(t['created_at']):<24} {t['fingerprint']}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    revoked = asyncio.run(_with_db(args.db, revoke_token, args.token))
    if revoked is None:
        print(f"smslab: no token {args.token!r} (give an ID from `smslab token list`, or the token itself)", file=sys.stderr)
        return 2
    print(f"revoked token {revoked['id']} of workspace '{revoked['workspace']}'; a running service refuses it within seconds")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smslab", description="SMS gateway simulator and testbed")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway (REST API, console, simulated carrier)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--db", default="smslab.db", help="SQLite file or postgresql:// URL (default: ./smslab.db)")
    serve.add_argument("--clock", default="wall", choices=["wall", "virtual"], help="wall time, or a virtual clock that /api/v1/clock/advance moves")
    serve.add_argument("--clock-start", default=None, help="virtual clock: the RFC 3339 instant it starts at (default: now, or where the last run left it)")
    serve.add_argument("--clock-rate", type=float, default=None, help="virtual clock: also flow at this multiple of real time (default 0: only advances move it)")
    serve.add_argument("--profile", default=None, help="simulated carrier profile: a TOML/JSON file or a preset name")
    serve.add_argument("--region", default=None, help="default region for numbers without a country code (default CN)")
    serve.add_argument("--workspace", default="default", help="workspace of the token printed at start")
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token; the workspace is created if needed")
    create.add_argument("--workspace", required=True)
    create.add_argument("--db", default="smslab.db")
    create.add_argument("--label", default=None)
    create.add_argument("--admin", action="store_true",
                        help="may also use service-wide controls (the virtual clock, /metrics)")
    create.set_defaults(func=_token_create)
    listing = token_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--db", default="smslab.db")
    listing.set_defaults(func=_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token", help="an ID from `smslab token list`, or the token itself")
    revoke.add_argument("--db", default="smslab.db")
    revoke.set_defaults(func=_token_revoke)

    from .check import add_check_command

    add_check_command(sub)

    from .scenario.cli import add_scenario_command

    add_scenario_command(sub)

    from .scaffold import add_plugin_commands

    add_plugin_commands(sub)

    # plugins add their own commands (the simulated carrier: `smslab carrier`)
    from .plugins import build_plugin_manager

    build_plugin_manager().hook.smslab_register_commands(subparsers=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
