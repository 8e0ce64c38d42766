"""The pipeline's stages replayed in one thread, without HTTP or asyncio: what each costs per
number, and how much of the receipt sink's transaction is SQL and how much Python.

    python -m loadtests.stages [--batches 200]

Each stage runs the service's own function on real SQLite files (the gateway's and the
carrier's schema and pragmas) for batches of 1,000 numbers on the ``perfect`` profile: the
dispatcher building a batch, the carrier deciding and recording it, the gateway recording the
acknowledgement, the carrier emitting the receipts, the sink applying them (4,000 per
transaction, as in the service). The server runs these on three threads that share the GIL;
this shows where the time goes, not how they overlap (that is ``bench pipeline``).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from gateway.clock import VirtualClock
from gateway.pipeline.dispatcher import _message_rows
from gateway.storage.fresh import FreshMessages
from gateway.storage.sqlite.messages import record_batch as _record_batch
from gateway.storage.sqlite.receipts import commit_receipts as _commit_receipts
from gateway.platform import Receipt, SubmitItem, SubmitResult
from gateway.storage.sqlite.schema import MIGRATIONS
from simulator import profile as profiles
from simulator import store
from simulator.core.books_sqlite import record_submission as _record_submission
from simulator.ledger import DueQueue
from simulator.model import RuleBook, decide_many

BATCH = 1000
TIMEOUT = 72 * 3600.0


class _Timed:
    """A connection that adds up the time of each statement, by its first words."""

    def __init__(self, conn: sqlite3.Connection, spent: dict[str, float]):
        self.conn = conn
        self.spent = spent

    def execute(self, sql: str, *args):
        return self._timed(self.conn.execute, sql, args)

    def executemany(self, sql: str, *args):
        return self._timed(self.conn.executemany, sql, args)

    def _timed(self, method, sql: str, args: tuple):
        t = time.perf_counter()
        try:
            return method(sql, *args)
        finally:
            self.spent[" ".join(sql.split()[:3])] += time.perf_counter() - t


def _connect(path: Path, migrations: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536"):
        conn.execute(pragma)
    for script in migrations:
        conn.executescript(script)
    return conn


def _transaction(conn, fn, *args):
    conn.execute("BEGIN IMMEDIATE")
    result = fn(conn, *args)
    conn.execute("COMMIT")
    return result


def run(batches: int, directory: Path) -> tuple[dict[str, float], dict[str, float], int]:
    gateway = _connect(directory / "smslab.db", MIGRATIONS)
    carrier = _connect(directory / "smslab.carrier.db", store.MIGRATIONS)
    gateway.execute(
        "INSERT INTO tasks(id, workspace_id, name, platform, sms_type, signature, content, content_summary, audience_id,"
        " audience_name, send_type, sub_activities, status, created_at, updated_at, parts, encoding)"
        " VALUES (1, 1, 'stages', 'sim', 'marketing', '', '{\"text\": \"x\"}', 'x', 1, 'a', 'immediate', '[]', 'sending', 0, 0, 1, 'GSM-7')"
    )
    profile = profiles.load_preset("perfect")
    rules = RuleBook(profile.number_rules)
    clock = VirtualClock(1_700_000_000.0)
    due, fresh = DueQueue(), FreshMessages()
    stages: dict[str, float] = defaultdict(float)
    sink_sql: dict[str, float] = defaultdict(float)
    next_rid, sent = 1, 0

    def stage(name: str, t0: float) -> float:
        t = time.perf_counter()
        stages[name] += t - t0
        return t

    for b in range(batches):
        t = time.perf_counter()
        batch = [SubmitItem("1-" + str(seq).zfill(10), 1, f"+8613{seq:09d}", "hello", 1)
                 for seq in range(b * BATCH, (b + 1) * BATCH)]
        t = stage("dispatcher: build the batch", t)
        ids = [f"sim-{item.key}" for item in batch]
        decisions = decide_many(profile, [(f"{item.task_id}:{item.number}", item.parts, item.number) for item in batch], rules)
        t = stage("carrier: decide", t)
        _, due_rows, _, next_rid = _transaction(carrier, _record_submission, clock, batch, ids, decisions, {}, profile, 0.0)
        due.push(due_rows)
        results = [SubmitResult(item.key, msg_id) for item, msg_id in zip(batch, ids)]
        t = stage("carrier: record (its own file)", t)
        rows, _ = _message_rows(1, 1, batch, results)
        first = _transaction(gateway, _record_batch, 1, "sim", 1, rows, clock.now(), (b + 1) * BATCH, (b + 1) * BATCH, "{}", TIMEOUT)
        fresh.add("sim", [row[3] for row in rows], first, 1, clock.now(), 1)
        sent += len(rows)
        t = stage("gateway: record the acknowledgement", t)
        clock.set(clock.now() + 0.01)
        if b % 4 == 3 or b == batches - 1:
            emitted = due.pop_due(clock.now(), 100_000)
            receipts = [Receipt(pid, status, at, part, code, "delivered") for at, _, pid, part, status, code in emitted]
            t = stage("carrier: emit receipts", t)
            timed = _Timed(gateway, sink_sql)
            timed.execute("BEGIN IMMEDIATE")
            tally = _commit_receipts(timed, [("sim", r) for r in receipts], TIMEOUT, clock.now(), {}, fresh)
            timed.execute("COMMIT")
            assert not tally.unmatched, f"{len(tally.unmatched)} receipts found no message"
            stage("gateway: apply receipts", t)
    (succeeded,) = gateway.execute("SELECT succeeded FROM tasks WHERE id=1").fetchone()
    assert succeeded == sent == batches * BATCH, (succeeded, sent)
    gateway.close()
    carrier.close()
    return stages, sink_sql, sent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=200, help="batches of 1,000 numbers (default 200)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="smslab-stages-") as tmp:
        stages, sink_sql, n = run(args.batches, Path(tmp))
    us = 1e6 / n
    print(f"## the pipeline's stages in one thread: {n:,} numbers, perfect profile\n")
    print("| stage | µs per number |\n| --- | --- |")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds * us:.2f} |")
    print(f"| **all** | **{sum(stages.values()) * us:.2f}** |")
    apply = stages["gateway: apply receipts"]
    sql = sum(sink_sql.values())
    print("\nInside the receipt sink's transactions (µs per receipt):\n")
    print("| part | µs |\n| --- | --- |")
    for statement, seconds in sorted(sink_sql.items(), key=lambda kv: -kv[1]):
        print(f"| `{statement} …` | {seconds * us:.2f} |")
    print(f"| Python (folding, encoding) | {(apply - sql) * us:.2f} |")


if __name__ == "__main__":
    main()
