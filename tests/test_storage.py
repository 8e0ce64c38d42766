"""The Database wrapper: what one coroutine commits, its next read sees, whatever else reads."""

from __future__ import annotations

import asyncio

from gateway.storage.db import Database


async def test_a_commit_is_visible_to_the_next_read_while_other_reads_run(tmp_path):
    db = Database(tmp_path / "s.db")
    await db.open()
    stop = False

    async def other_reads():
        while not stop:
            await db.fetchall("SELECT key, value FROM service_state")
            await db.fetchone("SELECT COUNT(*) FROM tasks")

    others = [asyncio.create_task(other_reads()) for _ in range(4)]
    try:
        for i in range(300):
            await db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('k', ?)", (str(i),))
            assert await db.fetchone("SELECT value FROM service_state WHERE key='k'") == (str(i),), i
    finally:
        stop = True
        await asyncio.gather(*others)
        await db.close()
