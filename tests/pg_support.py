"""A fresh PostgreSQL database per test: ``pg_url`` (a fixture) creates ``smslab_t_<random>``,
yields its URL and drops it afterwards, whatever the test left connected to it.

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

import contextlib
import getpass
import os
import uuid
from typing import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

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
