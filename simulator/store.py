"""Where the in-process simulated carrier of a SQLite gateway keeps its state: a SQLite file of
its own (a PostgreSQL gateway's carrier keeps its books in the gateway's database instead, so
that its instances share them: simulator/core/books_postgres.py). The standalone carrier uses the
same file layout.

A real operator does not share the gateway's database, and neither does the simulated one. The
practical reason is speed: SQLite has one writer per file, so while the carrier's state lived in
the gateway's file, every carrier write (a submission, an emission) queued behind the gateway's
own writes (message rows, receipts) on one thread. With a file of its own, the carrier's
transactions run on their own aiosqlite thread, in parallel with the gateway's (SQLite releases
the GIL while it works).

Crash safety does not need the two files to commit together: a number the carrier accepted but
the gateway did not record yet is resubmitted with the same idempotency key after a restart and
answered from the carrier's record, and the carrier records how far it emitted only after the
gateway committed the receipts.

The file sits next to the gateway's: ``smslab.db`` → ``smslab.carrier.db`` (``:memory:`` stays in
memory). Gateways from before this split kept the ``sim_*`` tables in their own file; the first
start moves them over (see ``adopt_from_gateway``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.storage.sqlite.db import Database

# the per-message tables earlier versions kept in the gateway's file; moved over and dropped at start
GATEWAY_TABLES = ("sim_state", "sim_messages", "sim_queue", "sim_emissions")


def _batches_from_messages(source: str) -> str:
    """SQL turning the gateway's old per-message ``sim_messages`` rows into ``sim_batches`` rows,
    one per message: a batch of one is still a batch."""
    planned_last = (
        "(SELECT r.value->>{k} FROM json_each(m.plan) r WHERE r.value->>6 = 0"
        " ORDER BY r.value->>4 DESC, r.value->>0 DESC LIMIT 1)"
    )
    return f"""
    INSERT INTO sim_batches(task_ref, submitted_at, first_key, last_key, last_due, last_rid, messages)
        SELECT m.task_ref, m.submitted_at, m.msg_id, m.msg_id, {planned_last.format(k=4)}, {planned_last.format(k=0)},
               json_array(json_array(m.msg_id, m.number, m.parts, m.outcome, m.code,
                                     json(printf('%!.17g', m.latency)), m.rule, json(m.plan)))
        FROM {source} m ORDER BY m.task_ref, m.msg_id;
    """


MIGRATIONS = [
    # 1: one row per submission batch, its messages (with their planned receipts) as one JSON
    # value; the receipts still to emit live in memory (simulator/ledger.py) and are found again
    # at start through (last_due, last_rid): the batch's last receipt to emit, in emission order.
    # One row per emission batch records how far and when; sim_state holds the profile, the
    # outage anchor, the emission watermark and the next receipt id.
    """
    CREATE TABLE sim_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO sim_state(key, value) VALUES ('next_receipt_id', '1');
    CREATE TABLE sim_batches (
        id INTEGER PRIMARY KEY,
        task_ref INTEGER NOT NULL,
        submitted_at REAL NOT NULL,
        first_key TEXT NOT NULL,
        last_key TEXT NOT NULL,
        last_due REAL,
        last_rid INTEGER,
        messages TEXT NOT NULL
    );
    CREATE INDEX sim_batches_task ON sim_batches(task_ref, first_key);
    CREATE INDEX sim_batches_pending ON sim_batches(last_due, last_rid) WHERE last_due IS NOT NULL;
    CREATE TABLE sim_emissions (
        id INTEGER PRIMARY KEY,
        up_to_due REAL NOT NULL,
        up_to_id INTEGER NOT NULL,
        emitted_at REAL NOT NULL
    );
    """,
    # 2: the carrier serves tenants (a gateway workspace, an SMPP or provider account), each with
    # its own profile, reset and ground truth: a batch records whose it is (NULL: the default).
    # The in-process carrier fills in batches from before at start from the gateway's tasks.
    # The outbox holds what was handed to a front end that acknowledges each item (webhooks,
    # SMPP binds): receipts and mobile-originated messages, with their delivery state.
    """
    ALTER TABLE sim_batches ADD COLUMN tenant TEXT;
    CREATE INDEX sim_batches_tenant ON sim_batches(tenant, first_key);
    -- receipts (and mobile-originated messages) a front end took to their end, one row each: the
    -- rest of a receipt is in its batch, found by its id (simulator/core/outbox.py)
    CREATE TABLE sim_outbox (
        rid INTEGER PRIMARY KEY,
        due_at REAL NOT NULL,
        state INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        sent_at REAL,
        acked_at REAL,
        last_error TEXT,
        mo TEXT
    );
    CREATE TABLE sim_accounts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


def carrier_db_path(gateway_path: str) -> str:
    if gateway_path == ":memory:" or gateway_path.startswith("file:"):
        return ":memory:"
    p = Path(gateway_path)
    return str(p.with_name(f"{p.stem}.carrier{p.suffix}"))


async def open_carrier_db(path: str, cache_mib: int = 8) -> Database:
    """The carrier's database; it appends one row per batch and reads back rarely, so a small page
    cache will do inside the gateway (the standalone carrier, with its outbox, takes more)."""
    db = Database(path, migrations=MIGRATIONS, cache_mib=cache_mib)
    await db.open()
    return db


async def adopt_from_gateway(db: Database, gateway: Database) -> bool:
    """Move ``sim_*`` tables left in the gateway's file (by versions before the split, or by the
    gateway's own early migrations on a fresh file) into the carrier's file, then drop them there.

    Copied only into a carrier file that holds no message yet, so a second start never mixes two
    histories; the copy commits before the gateway's tables are dropped, so a crash in between
    leaves the tables in both files and the next start just drops the gateway's."""
    present = await gateway.fetchone("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='sim_messages'")
    if not present or not present[0]:
        return False
    if gateway.path != ":memory:" and db.path != ":memory:":
        await db.outside_transaction(_copy_tables, gateway.path)

    def drop(conn: sqlite3.Connection) -> None:
        for table in GATEWAY_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    await gateway.write(drop)
    return True


def _copy_tables(conn: sqlite3.Connection, gateway_path: str) -> None:
    conn.execute("ATTACH DATABASE ? AS gw", (gateway_path,))
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            fresh = conn.execute("SELECT NOT EXISTS(SELECT 1 FROM main.sim_batches)").fetchone()[0]
            have = {r[0] for r in conn.execute("SELECT name FROM gw.sqlite_master WHERE type='table'")}
            if fresh and "sim_messages" in have and conn.execute("SELECT EXISTS(SELECT 1 FROM gw.sim_messages)").fetchone()[0]:
                conn.execute(_batches_from_messages("gw.sim_messages"))
                for table in ("sim_state", "sim_emissions"):
                    if table in have:
                        conn.execute(f"INSERT OR REPLACE INTO main.{table} SELECT * FROM gw.{table}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute("DETACH DATABASE gw")
