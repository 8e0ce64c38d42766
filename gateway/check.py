"""``smslab check``: do the tasks' counters agree with their message rows?

The counters are what the API and the console show; the rows are the record of every number
sent. They are written in the same transactions, so they must agree at every instant, a kill -9
included. This command counts the rows again (``gateway/storage/check.py`` says which counter
each row witnesses) and reports every task where they differ. It only reads, in one snapshot,
so it can run against the database of a service that is sending.

Exit status: 0 all counters match, 1 some do not, 2 the database cannot be checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from .storage import is_postgres, open_storage, sqlite_path
from .storage.check import NO_TASK, CountCheck, CounterMismatch


async def run_check(target: str, now: float | None = None) -> CountCheck:
    """Open ``target`` (a SQLite path or a postgresql:// URL), check it, close it. ``now``: the
    service's time, for which tasks' details have expired (None: as the database last saw it)."""
    storage = open_storage(target)
    await storage.open()
    try:
        return await storage.check.count_mismatches(now)
    finally:
        await storage.close()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def mismatch_line(m: CounterMismatch) -> str:
    if m.counter == NO_TASK:
        return f"task {m.task_id}: no such task, but {_plural(m.from_rows, 'message row')} name it"
    return f"task {m.task_id}: {m.counter} is {m.stored}, its message rows say {m.from_rows}"


def report_text(result: CountCheck) -> str:
    lines = [mismatch_line(m) for m in result.mismatches]
    checked = _plural(result.checked, "task") + " checked"
    if result.ok:
        lines.append(f"{checked}, all counters match their rows")
    else:
        tasks = len({m.task_id for m in result.mismatches})
        lines.append(f"{checked}: {_plural(len(result.mismatches), 'mismatch')} in {_plural(tasks, 'task')}")
    skipped = [f"{result.purged} with details purged" if result.purged else "",
               f"{result.expired} with details expired" if result.expired else ""]
    skipped = [s for s in skipped if s]
    if skipped:
        lines.append(f"skipped (only counters left to compare): {', '.join(skipped)}")
    return "\n".join(lines)


def report_json(result: CountCheck) -> str:
    return json.dumps({
        "ok": result.ok, "checked": result.checked,
        "skipped": {"purged": result.purged, "expired": result.expired},
        "mismatches": [m._asdict() for m in result.mismatches],
    })


def _check(args: argparse.Namespace) -> int:
    if not is_postgres(args.db) and not os.path.isfile(sqlite_path(args.db)):
        print(f"smslab: no database at {args.db!r} (give the --db that `smslab serve` uses)", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(run_check(args.db))
    except Exception as exc:  # a file that is no smslab database, a server that refuses: say so plainly
        print(f"smslab: cannot check {args.db!r}: {exc}", file=sys.stderr)
        return 2
    print(report_json(result) if args.json else report_text(result))
    return 0 if result.ok else 1


def add_check_command(sub) -> None:
    check = sub.add_parser("check", help="compare every task's counters with its message rows (read-only)")
    check.add_argument("--db", default="smslab.db", help="SQLite file or postgresql:// URL (default: ./smslab.db)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=_check)
