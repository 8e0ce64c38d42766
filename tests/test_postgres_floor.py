"""``python -m loadtests.pg_floor`` runs end to end (a few hundred rows): it creates its scratch
database, measures each driver and drops the database again."""

from __future__ import annotations

import uuid

import asyncpg

from loadtests import pg_floor
from tests.pg_support import admin_url


async def test_pg_floor_measures_and_cleans_up():
    url = await admin_url()
    name = f"smslab_floor_{uuid.uuid4().hex[:10]}"
    figures, settings = await pg_floor.run(url, 300, name)
    assert "asyncpg" in figures
    assert all(rate > 0 for driver in figures.values() for rate in driver.values())
    assert settings["server_version"]
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await conn.close()
