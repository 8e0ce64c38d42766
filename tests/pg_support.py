"""A fresh PostgreSQL database per test: ``pg_url`` (a fixture) creates ``smslab_t_<random>``,
yields its URL and drops it afterwards, whatever the test left connected to it.

The backend of the whole suite is switched here too: ``SMSLAB_TEST_BACKEND=postgres`` (default
``sqlite``) makes ``db_target(tmp_path)``, which every test asks for its gateway's database, a
fresh PostgreSQL database instead of a file in ``tmp_path``; tests marked ``sqlite_only`` are
skipped on that run.

Where the server is: ``SMSLAB_TEST_POSTGRES_URL`` (any database on it, e.g.
``postgresql://me@db.example/postgres``) if set; else the local server, tried as this user over
the Unix socket (Debian's default "peer" authentication), then over 127.0.0.1:5432 as this user
and as ``postgres`` (a "trust" setup). ``.ci/run`` starts or installs the server and creates a
superuser role named after the user running the tests.

An unreachable server FAILS the tests that need it: CI must not pass by testing one backend.
Without a server of your own, opt out explicitly with ``SMSLAB_TEST_POSTGRES=0``; those tests
are then skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import uuid
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from gateway.testing.pytest_plugin import run_coroutine

OPT_OUT = "SMSLAB_TEST_POSTGRES"
URL_VARIABLE = "SMSLAB_TEST_POSTGRES_URL"


def enabled() -> bool:
    return os.environ.get(OPT_OUT, "1").strip().lower() not in ("0", "no", "false", "off")


def candidate_urls() -> list[str]:
    if os.environ.get(URL_VARIABLE):
        return [os.environ[URL_VARIABLE]]
    user = getpass.getuser()
    urls = []
    for socket_dir in ("/var/run/postgresql", "/tmp"):
        if os.path.exists(os.path.join(socket_dir, ".s.PGSQL.5432")):
            urls.append(f"postgresql://{user}@/postgres?host={socket_dir}")
    urls += [f"postgresql://{user}@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/postgres"]
    return list(dict.fromkeys(urls))


_admin_url: str | None = None


async def admin_connection() -> asyncpg.Connection:
    """A connection allowed to create databases, by the first way in that works (remembered)."""
    global _admin_url
    if not enabled():
        pytest.skip(f"PostgreSQL tests switched off ({OPT_OUT}=0)")
    errors = []
    for url in ([_admin_url] if _admin_url else candidate_urls()):
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        _admin_url = url
        return conn
    pytest.fail("PostgreSQL is not reachable, and these tests need it:\n  " + "\n  ".join(errors)
                + f"\nStart a server (.ci/run does), point {URL_VARIABLE} at one, or set {OPT_OUT}=0 to skip these tests.",
                pytrace=False)


async def admin_url() -> str:
    """The URL ``admin_connection`` got in by (for a tool that creates databases of its own)."""
    conn = await admin_connection()
    await conn.close()
    assert _admin_url is not None
    return _admin_url


def database_url(admin_url: str, name: str) -> str:
    """The same server and user, another database (urlunsplit would drop an empty ``//``)."""
    parts = urlsplit(admin_url)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped on the way out (connections left open included)."""
    admin = await admin_connection()
    name = f"smslab_t_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield database_url(_admin_url, name)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


# -- the backend the whole suite runs against ------------------------------------------------------
# ``SMSLAB_TEST_BACKEND=postgres`` runs every test that makes a gateway database against a fresh
# PostgreSQL database instead of a SQLite file (CI runs the suite once per backend). Read here
# only; tests ask ``db_target`` for a database and ``sqlite_only`` marks the few that need the file.
BACKEND_VARIABLE = "SMSLAB_TEST_BACKEND"
BACKENDS = ("sqlite", "postgres")


def backend() -> str:
    name = os.environ.get(BACKEND_VARIABLE, "sqlite").strip().lower() or "sqlite"
    name = {"postgresql": "postgres", "pg": "postgres"}.get(name, name)
    if name not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND_VARIABLE}: one of {', '.join(BACKENDS)}, not {name!r}")
    return name


def on_postgres() -> bool:
    return backend() == "postgres"


_created: list[str] = []       # databases db_target made, dropped after the test (drop_test_databases)
_session_created: list[str] = []  # db_target(session=True): dropped when the session ends
_targets: dict[str, str] = {}  # tmp_path / name -> its URL: asked twice, the same database (a restart)


def db_target(tmp_path, name: str = "smslab.db", *, session: bool = False) -> str:
    """Where a test's gateway keeps its data: ``tmp_path / name`` on the SQLite run; on the
    PostgreSQL run the URL of a new database, dropped when the test ends (the simulated
    carrier keeps its books in it too). The same ``tmp_path`` and ``name``
    give the same database for the rest of the test (a gateway restarted on its data);
    ``session=True`` keeps it until the session ends (a module- or session-scoped fixture's)."""
    path = str(Path(tmp_path) / name)
    if not on_postgres():
        return path
    if path in _targets:
        return _targets[path]

    async def create() -> str:
        admin = await admin_connection()
        try:
            db_name = f"smslab_t_{uuid.uuid4().hex[:12]}"
            await admin.execute(f"CREATE DATABASE {db_name}")
            return db_name
        finally:
            await admin.close()

    db_name = run_coroutine(create)
    (_session_created if session else _created).append(db_name)
    url = database_url(_admin_url, db_name)
    _targets[path] = url
    return url


def run_postgres(url: str, sql: str, *args) -> list:
    """One statement on a PostgreSQL database behind the service's back (what a test plants or
    corrupts), its rows as tuples."""
    async def run() -> list:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return run_coroutine(run)


def query(target: str, sql: str, *args) -> list[tuple]:
    """Rows read from a gateway's database itself, whichever backend (evidence independent of the
    API): ``sql`` in SQLite's ``?`` style, numbered for PostgreSQL; the file opened read-only."""
    if target.startswith(("postgresql://", "postgres://")):
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{rest}" for i, rest in enumerate(parts[1:], start=1))
        return run_postgres(target, numbered, *args)
    import sqlite3

    with sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


def sim_db_for(target: str) -> str | None:
    """The simulated carrier's own SQLite file for a gateway target db_target gave, if it is not
    the default one next to the gateway's file: never, any more (on PostgreSQL the carrier's
    books live in the gateway's database). Kept for the callers that ask."""
    return None


def sim_env(target: str) -> dict[str, str]:
    """The environment a ``smslab serve --db target`` process needs for its carrier: nothing, on
    either backend (see ``sim_db_for``)."""
    return {}


def drop_created_databases(created: list[str] | None = None) -> None:
    """Drop every database db_target made for this test (servers still connected included)."""
    created = _created if created is None else created
    if not created:
        return
    names = list(created)
    created.clear()

    async def drop() -> None:
        admin = await admin_connection()
        try:
            for db_name in names:
                await admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        finally:
            await admin.close()

    run_coroutine(drop)
    for path, url in list(_targets.items()):
        if url.rsplit("/", 1)[-1].split("?")[0] in names:
            del _targets[path]


@pytest.fixture(autouse=True)
def drop_test_databases(request):
    """Autouse (tests/conftest.py and the plugins' conftests import it): a test's databases go
    with it."""
    yield
    drop_created_databases()


@pytest.fixture(scope="session", autouse=True)
def drop_session_databases():
    yield
    drop_created_databases(_session_created)


def configure_backend() -> None:
    """On the PostgreSQL run, point what the pytest plugin and the conformance harness start
    (``SMSLAB_TEST_DB``) at the server: each of them makes a fresh database of its own there."""
    if not on_postgres():
        return
    if not enabled():
        raise pytest.UsageError(f"{BACKEND_VARIABLE}=postgres needs PostgreSQL, and {OPT_OUT}=0 switched it off")
    try:
        os.environ["SMSLAB_TEST_DB"] = run_coroutine(admin_url)
    except pytest.fail.Exception as exc:  # unreachable: say so once, before any test runs
        raise pytest.UsageError(str(exc)) from None


def skip_sqlite_only(items) -> None:
    """On the PostgreSQL run, skip the tests marked ``sqlite_only`` (they need the SQLite file)."""
    if not on_postgres():
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs the SQLite file"
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only: {reason} ({BACKEND_VARIABLE}=postgres)"))


class Evidence:
    """A test service's own tables read with SQLite-style SQL (``?`` placeholders) on either
    backend: the rows as independent evidence next to what the API says. Rows come back as
    tuples, as SQLite gives them."""

    def __init__(self, storage):
        self.db = storage.db
        self.postgres = storage.backend == "postgres"

    def _sql(self, sql: str) -> str:
        if not self.postgres:
            return sql
        parts = sql.split("?")
        return parts[0] + "".join(f"${i}{rest}" for i, rest in enumerate(parts[1:], start=1))

    async def fetchall(self, sql: str, params=()) -> list[tuple]:
        return [tuple(row) for row in await self.db.fetchall(self._sql(sql), tuple(params))]

    async def fetchone(self, sql: str, params=()) -> tuple | None:
        row = await self.db.fetchone(self._sql(sql), tuple(params))
        return tuple(row) if row is not None else None
