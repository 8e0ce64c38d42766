"""The floor of PostgreSQL for the gateway's two hot writes, per driver, next to SQLite's floor.

    python -m loadtests.pg_floor [--rows 200000] [--repeat 1] [--url postgresql:///postgres]

On a fresh database (created and dropped here) with the service's own schema
(gateway/storage/postgres/schema.py: the messages table and its indexes), for asyncpg and
psycopg 3 (async; measured only when installed, it is not one of smslab's dependencies) in the
same run:

- message rows in: ``COPY`` (binary) in batches of 1,000 rows, the dispatcher's batch, a
  transaction each; and ``INSERT … SELECT FROM unnest(…)`` the same way, for comparison;
- receipt results applied: ``UPDATE messages SET … FROM unnest($1::bigint[], …)`` by id, the six
  columns the receipt sink writes, a transaction per batch of 1,000, 4,000 (the sink's flush)
  and 10,000 results.

``hot_path_floor`` is the baseline ``bench pipeline/ingest --backend postgres`` print next to
their figures: COPY in batches of 1,000, then UPDATE … FROM unnest in the sink's 4,000.

The same-run SQLite floor is ``bench pipeline``'s (``loadtests.bench.sqlite_floor``): raw
``executemany`` into the service's SQLite messages table, one transaction for the inserts, one
for the updates. Every figure is rows per second of wall time, client and server together (the
server runs on the same machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

import asyncpg

from gateway.storage.postgres.db import migrate

COLUMNS = ("id", "task_id", "number", "parts", "result", "platform_id", "submitted_at")
INSERT_BATCH = 1000
UPDATE_BATCHES = (1000, 4000, 10000)
_UPDATE = (
    "UPDATE messages SET result = u.result, delivered_mask = u.dm, failed_mask = u.fm, reasons = u.reasons,"
    " late = u.late, receipt_at = u.at"
    " FROM unnest({}::bigint[], {}::int[], {}::bigint[], {}::bigint[], {}::text[], {}::int[], {}::float8[])"
    " AS u(id, result, dm, fm, reasons, late, at) WHERE messages.id = u.id"
)
# the receipt flush's own form (gateway/storage/postgres/receipts.py): the rows as one JSON text,
# which spares the client asyncpg's element-by-element check of seven array parameters
_UPDATE_JSON = (
    "UPDATE messages SET result = u.result, delivered_mask = u.dm, failed_mask = u.fm, reasons = u.reasons,"
    " late = u.late, receipt_at = u.at FROM (SELECT (e->>0)::bigint AS id, (e->>1)::int AS result,"
    " (e->>2)::bigint AS dm, (e->>3)::bigint AS fm, e->>4 AS reasons, (e->>5)::int AS late, (e->>6)::float8 AS at"
    " FROM jsonb_array_elements($1::jsonb) AS e) AS u WHERE messages.id = u.id"
)
_INSERT = (
    "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at)"
    " SELECT * FROM unnest({}::bigint[], {}::bigint[], {}::text[], {}::int[], {}::int[], {}::text[], {}::float8[])"
)


def message_rows(n: int) -> list[tuple]:
    now = time.time()
    return [(i, 1, f"+8613{i:09d}", 1, 0, f"sim-1-{i}", now) for i in range(1, n + 1)]


def receipt_columns(rows: list[tuple]) -> list[list]:
    """What the sink writes for each number: delivered, its one part's bit, no reason, on time."""
    now = time.time()
    ids = [r[0] for r in rows]
    return [ids, [1] * len(ids), [1] * len(ids), [0] * len(ids), [None] * len(ids), [0] * len(ids), [now] * len(ids)]


def batches(rows: list, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def transpose(rows: list[tuple]) -> list[list]:
    return [list(c) for c in zip(*rows)]


# -- asyncpg ---------------------------------------------------------------------------------
async def asyncpg_copy(url: str, rows: list[tuple]) -> float:
    conn = await asyncpg.connect(url)
    try:
        t = time.perf_counter()
        for batch in batches(rows, INSERT_BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table("messages", columns=list(COLUMNS), records=batch)
        return time.perf_counter() - t
    finally:
        await conn.close()


async def asyncpg_insert(url: str, rows: list[tuple]) -> float:
    conn = await asyncpg.connect(url)
    try:
        sql = _INSERT.format(*(f"${i}" for i in range(1, 8)))
        t = time.perf_counter()
        for batch in batches(rows, INSERT_BATCH):
            await conn.execute(sql, *transpose(batch))
        return time.perf_counter() - t
    finally:
        await conn.close()


async def asyncpg_update(url: str, rows: list[tuple], size: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        sql = _UPDATE.format(*(f"${i}" for i in range(1, 8)))
        t = time.perf_counter()
        for batch in batches(rows, size):
            await conn.execute(sql, *receipt_columns(batch))
        return time.perf_counter() - t
    finally:
        await conn.close()


async def asyncpg_update_json(url: str, rows: list[tuple], size: int) -> float:
    import msgspec

    encode = msgspec.json.Encoder().encode
    conn = await asyncpg.connect(url)
    try:
        t = time.perf_counter()
        for batch in batches(rows, size):
            await conn.execute(_UPDATE_JSON, encode(list(zip(*receipt_columns(batch)))).decode())
        return time.perf_counter() - t
    finally:
        await conn.close()


# -- psycopg 3 -------------------------------------------------------------------------------
async def psycopg_copy(url: str, rows: list[tuple]) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        t = time.perf_counter()
        for batch in batches(rows, INSERT_BATCH):
            async with conn.transaction():
                async with conn.cursor() as cur:
                    async with cur.copy(f"COPY messages ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(["int8", "int8", "text", "int4", "int4", "text", "float8"])
                        for row in batch:
                            await copy.write_row(row)
        return time.perf_counter() - t


async def psycopg_insert(url: str, rows: list[tuple]) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        sql = _INSERT.format(*(["%s"] * 7))
        t = time.perf_counter()
        for batch in batches(rows, INSERT_BATCH):
            await conn.execute(sql, transpose(batch), prepare=True, binary=True)
        return time.perf_counter() - t


async def psycopg_update(url: str, rows: list[tuple], size: int) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        sql = _UPDATE.format(*(["%s"] * 7))
        t = time.perf_counter()
        for batch in batches(rows, size):
            await conn.execute(sql, receipt_columns(batch), prepare=True, binary=True)
        return time.perf_counter() - t


def drivers() -> dict:
    """asyncpg (the service's driver), and psycopg 3 if installed: it is not a dependency of
    smslab, only the other candidate (``pip install 'psycopg[binary]'`` to compare)."""
    found = {"asyncpg": (asyncpg_copy, asyncpg_insert, asyncpg_update)}
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("psycopg 3 is not installed: measuring asyncpg alone (pip install 'psycopg[binary]' to compare)\n")
    else:
        found["psycopg 3"] = (psycopg_copy, psycopg_insert, psycopg_update)
    return found


async def _reset(url: str) -> None:
    """An empty messages table, vacuumed, so each measurement starts from the same state."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE messages")
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()


async def measure(url: str, n: int, repeat: int = 1) -> dict[str, dict[str, float]]:
    """Each figure for each driver, the drivers taking turns measurement by measurement (so that
    a shared machine's load moving during the run falls on both alike); the best of ``repeat``."""
    rows = message_rows(n)
    found = drivers()
    figures: dict[str, dict[str, float]] = {driver: {} for driver in found}

    def keep(driver: str, name: str, seconds: float) -> None:
        figures[driver][name] = max(figures[driver].get(name, 0.0), n / seconds)

    for _ in range(repeat):
        for driver, (copy, insert, update) in found.items():
            await _reset(url)
            keep(driver, "INSERT … unnest, batches of 1,000", await insert(url, rows))
        for driver, (copy, insert, update) in found.items():
            await _reset(url)
            keep(driver, "COPY, batches of 1,000", await copy(url, rows))
            for size in UPDATE_BATCHES:
                keep(driver, f"UPDATE … FROM unnest, batches of {size:,}", await update(url, rows, size))
            if driver == "asyncpg":  # the two forms of the sink's UPDATE, each on rows fresh from COPY
                for form, fn in (("unnest", update), ("jsonb_array_elements", asyncpg_update_json)):
                    await _reset(url)
                    await copy(url, rows)
                    keep(driver, f"UPDATE … FROM {form}, batches of {SINK_BATCH:,}, on rows fresh from COPY",
                         await fn(url, rows, SINK_BATCH))
    return figures


def sqlite_floor(n: int) -> dict[str, float]:
    from loadtests.bench import sqlite_floor as floor

    with tempfile.TemporaryDirectory(prefix="smslab-pg-floor-") as tmp:
        insert, update = floor(Path(tmp) / "floor.db", n)
    return {"INSERT executemany, one transaction": n / insert, "UPDATE executemany, one transaction": n / update}


def with_database(url: str, name: str) -> str:
    """The same server and user, another database (urlunsplit would drop an empty ``//``)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


@contextlib.asynccontextmanager
async def scratch_database(url: str, name: str | None = None) -> AsyncIterator[str]:
    """A database ``name`` (made up if not given) created through ``url`` with the service's
    schema, its URL for the block; dropped after it, connections and all."""
    admin = await asyncpg.connect(url)
    name = name or f"smslab_floor_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        target = with_database(url, name)
        conn = await asyncpg.connect(target)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield target
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def run(url: str, n: int, name: str | None = None, repeat: int = 1) -> tuple[dict, dict[str, str]]:
    """Measure on a scratch database ``name`` (made up if not given) created through ``url``."""
    async with scratch_database(url, name) as target:
        conn = await asyncpg.connect(target)
        try:
            settings = {key: await conn.fetchval(f"SHOW {key}") for key in ("server_version", "synchronous_commit", "fsync", "shared_buffers")}
        finally:
            await conn.close()
        return await measure(target, n, repeat), settings


SINK_BATCH = 4000  # the receipt sink's flush: the batch the floor's UPDATE uses next to a benchmark


async def hot_path_floor(url: str, n: int, update_batch: int = SINK_BATCH) -> tuple[float, float]:
    """The floor ``bench pipeline/ingest --backend postgres`` prints next to their figures: on a
    scratch database with the service's schema, ``n`` message rows in by COPY (batches of 1,000,
    the dispatcher's), then the same rows' results by ``UPDATE … FROM unnest`` (batches of the
    sink's flush). Returns the seconds of each."""
    async with scratch_database(url) as target:
        rows = message_rows(n)
        copy = await asyncpg_copy(target, rows)
        update = await asyncpg_update(target, rows, update_batch)
        return copy, update


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=1, help="measure each figure this many times, keep the best")
    p.add_argument("--url", default="postgresql:///postgres",
                   help="a database to connect to for creating the scratch one (default: %(default)s, the local"
                        " server's Unix socket as this user)")
    args = p.parse_args()
    figures, settings = asyncio.run(run(args.url, args.rows, repeat=args.repeat))
    floor = sqlite_floor(args.rows)
    print(f"## PostgreSQL floor: {args.rows:,} message rows ({', '.join(f'{k} {v}' for k, v in settings.items())})\n")
    names = list(figures["asyncpg"])
    print("| rows/s | " + " | ".join(figures) + " |")
    print("| --- |" + " --- |" * len(figures))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{figures[d][name]:,.0f}" if name in figures[d] else "—" for d in figures) + " |")
    print("\nSame-run SQLite floor (`loadtests.bench.sqlite_floor`):\n")
    print("| rows/s | sqlite3 |\n| --- | --- |")
    for name, rate in floor.items():
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
