"""``smslab scenario run FILE`` and ``smslab scenario check FILE...`` (wired into gateway/cli.py)."""

from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from .runner import run_file

    if bool(args.url) != bool(args.token):
        print("smslab: --url and --token go together (or leave both out for a private gateway)", file=sys.stderr)
        return 2
    return run_file(args.file, args.url, args.token)


def _check(args: argparse.Namespace) -> int:
    from .runner import check_files

    return check_files(args.files)


def add_scenario_command(sub) -> None:
    scenario = sub.add_parser("scenario", help="play TOML files of timed steps on the virtual clock")
    scenario_sub = scenario.add_subparsers(dest="scenario_command", required=True)
    run = scenario_sub.add_parser(
        "run", help="play a scenario; exit 0 if every expectation held, 1 if one failed, 2 invalid file, 3 a step failed",
        description="Play a scenario file against a private in-process gateway (virtual clock, fresh database),"
                    " or with --url/--token against a running `smslab serve --clock virtual` (an admin token).")
    run.add_argument("file")
    run.add_argument("--url", default=None, help="a running gateway started with --clock virtual")
    run.add_argument("--token", default=None, help="an admin token of that gateway (it advances the clock)")
    run.set_defaults(func=_run)
    check = scenario_sub.add_parser("check", help="validate scenario files; exit 2 with FILE:LINE errors if one is invalid")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=_check)
