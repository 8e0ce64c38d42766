"""The PostgreSQL backend's foundation: versioned migrations (once, even with instances starting
together), the platform store and the leases, on a fresh database per test (tests/pg_support.py;
these FAIL without a server unless SMSLAB_TEST_POSTGRES=0)."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from gateway.storage import StorageUnavailable, open_storage
from gateway.storage.postgres import PostgresStorage
from gateway.storage.postgres.db import columns, copy_rows, migrate, unnest
from gateway.storage.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from gateway.storage.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.pg_support import pg_url  # noqa: F401  (the fixture)


@pytest.fixture
async def storage(pg_url):  # noqa: F811
    storage = open_storage(pg_url)
    await storage.open()
    yield storage
    await storage.close()


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


# -- migrations ------------------------------------------------------------------------------
async def test_open_storage_picks_postgres_for_a_url(storage):
    assert isinstance(storage, PostgresStorage)
    assert storage.backend == "postgres"
    assert storage.write_error is None


async def test_migrations_are_recorded_and_applying_them_again_does_nothing(storage, pg_url):  # noqa: F811
    assert await _versions(pg_url) == list(range(1, len(PG_MIGRATIONS) + 1))
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn) == []
    finally:
        await conn.close()
    again = PostgresStorage(pg_url)
    await again.open()
    await again.close()
    assert await _versions(pg_url) == list(range(1, len(PG_MIGRATIONS) + 1))


async def test_instances_opening_together_migrate_once(pg_url):  # noqa: F811
    conns = [await asyncpg.connect(pg_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    # one of them applied every migration, the others found nothing left to do
    assert sorted(applied, key=len) == [[], [], [], list(range(1, len(PG_MIGRATIONS) + 1))]
    first, second = PostgresStorage(pg_url), PostgresStorage(pg_url)
    await asyncio.gather(first.open(), second.open())
    await first.platform_store("p").put_many({"k": 1})
    assert await second.platform_store("p").get_many(["k"]) == {"k": 1}
    await asyncio.gather(first.close(), second.close())
    assert await _versions(pg_url) == list(range(1, len(PG_MIGRATIONS) + 1))


async def test_storages_opened_concurrently_on_a_fresh_database_migrate_once(pg_url):  # noqa: F811
    storages = [PostgresStorage(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in storages))
    await asyncio.gather(*(s.close() for s in storages))
    assert await _versions(pg_url) == list(range(1, len(PG_MIGRATIONS) + 1))


async def test_a_database_from_a_newer_smslab_is_refused(pg_url):  # noqa: F811
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", len(PG_MIGRATIONS) + 1)
        with pytest.raises(RuntimeError, match="newer"):
            await migrate(conn)
    finally:
        await conn.close()


def _sqlite_schema() -> tuple[dict[str, list[str]], set[str]]:
    """SQLite's tables (their columns) and index names as its migrations leave them, without the
    carrier's ``sim_*`` tables (the carrier has its own file)."""
    conn = sqlite3.connect(":memory:")
    for script in SQLITE_MIGRATIONS:
        conn.executescript(script)
    tables = {name: [c[1] for c in conn.execute(f"PRAGMA table_info({name})")]
              for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if not name.startswith(("sqlite_", "sim_"))}
    indexes = {name for name, table in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")
               if not table.startswith("sim_")}
    conn.close()
    return tables, indexes


async def test_the_schema_has_sqlite_s_tables_columns_and_indexes(storage, pg_url):  # noqa: F811
    tables, indexes = _sqlite_schema()
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns"
                                " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
        pg_indexes = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        partial = {r[0]: r[1] for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '% WHERE %'")}
    finally:
        await conn.close()
    pg_tables: dict[str, list[str]] = {}
    for table, column in rows:
        pg_tables.setdefault(table, []).append(column)
    assert pg_tables.pop("schema_migrations") == ["version", "applied_at"]
    assert pg_tables.pop("leases") == ["name", "holder", "expires_at"]
    assert {t: sorted(c) for t, c in pg_tables.items()} == {t: sorted(c) for t, c in tables.items()}
    assert indexes <= pg_indexes
    assert set(partial) == {"messages_unsettled", "audiences_name", "unmatched_pid", "unmatched_ws", "inbound_platform_id"}


async def test_ids_are_never_handed_out_twice(storage):
    async with storage.db.transaction() as conn:
        first = await conn.fetchval("INSERT INTO workspaces(name, created_at) VALUES ('a', 0) RETURNING id")
        await conn.execute("DELETE FROM workspaces WHERE id = $1", first)
    async with storage.db.transaction() as conn:
        second = await conn.fetchval("INSERT INTO workspaces(name, created_at) VALUES ('a', 0) RETURNING id")
    assert second > first


# -- the database wrapper --------------------------------------------------------------------
async def test_write_commits_whole_or_not_at_all_and_calls_on_commit_only_after_a_commit(storage):
    seen = []

    async def insert(conn, name, fail):
        await conn.execute("INSERT INTO service_state(key, value) VALUES ($1, 'v')", name)
        if fail:
            raise ValueError("no")
        return name

    assert await storage.db.write(insert, "kept", False, on_commit=seen.append) == "kept"
    with pytest.raises(ValueError):
        await storage.db.write(insert, "undone", True, on_commit=seen.append)
    assert seen == ["kept"]
    rows = await storage.db.fetchall("SELECT key FROM service_state ORDER BY key")
    assert [r[0] for r in rows] == ["kept"]
    assert await storage.db.execute("UPDATE service_state SET value = 'w'") == 1
    assert storage.write_error is None


async def test_database_trouble_comes_out_as_storage_unavailable_until_a_write_succeeds(storage):
    async def disk_full(conn):
        raise asyncpg.exceptions.DiskFullError("could not extend file: No space left on device")

    with pytest.raises(StorageUnavailable):
        await storage.db.write(disk_full)
    assert "No space left" in storage.write_error
    with pytest.raises(asyncpg.UniqueViolationError):  # the statement's own fault: not the database's
        await storage.db.execute("INSERT INTO service_state(key, value) VALUES ('k', 'v'), ('k', 'v')")
    assert storage.write_error is not None
    await storage.db.execute("INSERT INTO service_state(key, value) VALUES ('k', 'v')")
    assert storage.write_error is None


async def test_batched_writes_copy_rows_in_and_update_them_from_unnest_arrays(storage):
    rows = [(i, 7, f"+8613{i:09d}", 1, 0, f"sim-{i}", 1.5 + i) for i in range(1, 2001)]
    names = ("id", "task_id", "number", "parts", "result", "platform_id", "submitted_at")

    async def put(conn):
        await copy_rows(conn, "messages", names, rows)

    async def apply(conn, results):
        return await conn.execute(
            "UPDATE messages SET result = u.result, receipt_at = u.at FROM "
            + unnest("bigint", "int", "float8") + " AS u(id, result, at) WHERE messages.id = u.id",
            *columns(results, 3))

    await storage.db.write(put)
    assert await storage.db.write(apply, [(i, 1 + i % 2, 1e9 + i / 3) for i in range(1, 2001, 2)]) == "UPDATE 1000"
    assert await storage.db.write(apply, []) == "UPDATE 0"
    counts = await storage.db.fetchall("SELECT result, count(*) FROM messages WHERE task_id = $1 GROUP BY result ORDER BY result", (7,))
    assert [tuple(r) for r in counts] == [(0, 1000), (2, 1000)]
    assert (await storage.db.fetchone("SELECT receipt_at FROM messages WHERE id = 3"))[0] == 1e9 + 3 / 3


# -- leases ----------------------------------------------------------------------------------
@pytest.fixture
async def two(pg_url, storage):  # noqa: F811
    """A second instance on the same database (its own pool): two gateways, one database."""
    other = PostgresStorage(pg_url)
    await other.open()
    yield storage.leases, other.leases
    await other.close()


async def test_a_lease_is_held_until_it_expires_then_taken_over(two):
    a, b = two
    assert await a.acquire("sweep", "A", now=1000.0, seconds=10)
    assert not await b.acquire("sweep", "B", now=1005.0, seconds=10)  # A holds it
    assert await a.acquire("sweep", "A", now=1005.0, seconds=10)  # A's own: renewed
    assert (await a.get("sweep")).expires_at == 1015.0
    assert not await b.acquire("sweep", "B", now=1014.9, seconds=10)
    assert await b.acquire("sweep", "B", now=1015.0, seconds=10)  # expired: B takes over
    assert await b.get("sweep") == ("sweep", "B", 1025.0)
    assert not await a.renew("sweep", "A", now=1016.0, seconds=10)  # A lost it and must stop
    assert await b.renew("sweep", "B", now=1016.0, seconds=10)
    assert not await a.release("sweep", "A")
    assert await b.release("sweep", "B")
    assert await a.get("sweep") == ("sweep", None, None)
    assert await a.acquire("sweep", "A", now=1017.0, seconds=10)  # released: free at once
    assert await a.get("never") is None


async def test_an_expired_lease_nobody_took_still_renews(two):
    a, _ = two
    assert await a.acquire("task:1", "A", now=0.0, seconds=10)
    assert await a.renew("task:1", "A", now=30.0, seconds=10)
    assert (await a.get("task:1")).expires_at == 40.0


async def test_only_one_of_many_acquiring_at_once_gets_the_lease(two):
    a, b = two
    holders = [f"H{i}" for i in range(10)]
    got = await asyncio.gather(*((a if i % 2 else b).acquire("dispatch", h, 50.0, 10) for i, h in enumerate(holders)))
    assert sum(got) == 1
    assert (await a.get("dispatch")).holder == holders[got.index(True)]


async def test_claim_one_hands_each_candidate_to_one_claimer_in_order(two):
    a, b = two
    candidates = [f"task:{i}" for i in range(1, 6)]
    assert await a.claim_one(candidates, "A", now=100.0, seconds=10) == "task:1"
    assert await b.claim_one(candidates, "B", now=100.0, seconds=100) == "task:2"
    assert await a.claim_one(candidates, "A", now=100.0, seconds=10) == "task:3"  # task:1 is A's already
    claimed = await asyncio.gather(*((a if i % 2 else b).claim_one(candidates, f"C{i}", 100.0, 100) for i in range(6)))
    got = [c for c in claimed if c]
    assert len(got) == len(set(got)) and set(got) <= {"task:4", "task:5"}  # never one name twice
    while (late := await a.claim_one(candidates, "C9", 100.0, 100)) is not None:  # a claim that lost a race
        got.append(late)
    assert sorted(got) == ["task:4", "task:5"]
    assert await b.claim_one(candidates, "B", now=105.0, seconds=10) is None
    # A dies: at 110 its leases (task:1, task:3) expire and B takes them over, first first
    assert await b.claim_one(candidates, "B", now=110.0, seconds=10) == "task:1"
    assert await b.claim_one(candidates, "B", now=110.0, seconds=10) == "task:3"
    assert await b.claim_one(candidates, "B", now=110.0, seconds=10) is None
    assert not await a.renew("task:1", "A", now=111.0, seconds=10)
    assert await a.claim_one([], "A", 0.0, 1) is None


async def test_claim_one_passes_over_a_row_being_claimed_instead_of_waiting(storage, pg_url):  # noqa: F811
    await storage.leases.claim_one(["t1", "t2"], "seed", now=0.0, seconds=1)  # rows exist, expired at 1
    blocker = await asyncpg.connect(pg_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM leases WHERE name = 't1' FOR UPDATE")
        got = await asyncio.wait_for(storage.leases.claim_one(["t1", "t2"], "B", now=5.0, seconds=10), timeout=5)
        assert got == "t2"
        await tx.rollback()
    finally:
        await blocker.close()
    assert await storage.leases.claim_one(["t1", "t2"], "B", now=5.0, seconds=10) == "t1"


async def test_release_all_frees_what_a_stopping_instance_held(two):
    a, b = two
    for name in ("task:1", "task:2"):
        assert await a.acquire(name, "A", 0.0, 100)
    assert await b.acquire("task:3", "B", 0.0, 100)
    assert await a.release_all("A") == 2
    assert await b.claim_one(["task:1", "task:2", "task:3"], "B", 1.0, 100) == "task:1"


async def test_many_instances_claiming_at_once_never_share_a_name(two):
    a, b = two
    candidates = [f"task:{i}" for i in range(20)]
    owners: dict[str, str] = {}
    for round_ in range(3):
        claimed = await asyncio.gather(*((a if i % 2 else b).claim_one(candidates, f"I{round_}.{i}", 0.0, 1000)
                                         for i in range(16)))
        for i, name in enumerate(claimed):
            if name is not None:
                assert name not in owners, f"{name} claimed twice"
                owners[name] = f"I{round_}.{i}"
    while (name := await a.claim_one(candidates, "last", 0.0, 1000)) is not None:
        assert name not in owners
        owners[name] = "last"
    assert sorted(owners) == sorted(candidates)
    for name, holder in owners.items():
        assert (await a.get(name)).holder == holder
