"""After a fault the service repairs itself: a full disk stalls recording but loses nothing and
hangs nothing (``sent`` ends equal to what the carrier accepted), /healthz says what is wrong
meanwhile, and audience uploads left half-written by a kill or a full disk are swept away.

A full disk is SQLite's SQLITE_FULL, reproduced with ``PRAGMA max_page_count`` on the gateway's
writer connection: every write that needs a new page fails exactly as on a full file system."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from gateway.web.keys import clock_key, db_key, storage_key
from tests.counts import assert_counters_match_rows_of

# a full disk is SQLite's own (max_page_count on the writer), and the half-written upload is
# planted in the file with sqlite3
pytestmark = pytest.mark.sqlite_only("a full disk reproduced with SQLite's max_page_count")

NUMBERS = [f"+86138{i:08d}" for i in range(5000)]


async def _limit_pages(db, extra: int | None) -> None:
    (pages,) = await db.fetchone("PRAGMA page_count")
    await db.writer.execute(f"PRAGMA max_page_count={pages + extra if extra is not None else 1073741823}")


async def _health(service) -> tuple[int, dict]:
    resp = await service.get("/healthz")
    return resp.status, await resp.json()


async def test_a_full_disk_stalls_the_send_and_it_finishes_once_there_is_room(api, service):
    db = service.server.app[db_key]
    await api.profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 5},
                      moderation={"review_seconds": 0})
    aud = await api.audience(NUMBERS, name="big")
    task = await api.task(aud["id"], name="full-disk")
    await _limit_pages(db, 1)  # the first batch of message rows no longer fits
    # the advance returns although nothing can be recorded (it used to hang for ever)
    await asyncio.wait_for(api.advance(1), 30)
    for _ in range(100):
        status, health = await _health(service)
        if status == 503:
            break
        await asyncio.sleep(0.05)
    assert status == 503 and health["checks"]["writer"]["status"] == "failing", health
    assert "full" in health["checks"]["writer"]["error"]
    stalled = await api.get(f"/api/v1/tasks/{task['id']}")
    assert stalled["status"] == "sending" and stalled["sent"] < len(NUMBERS)

    await _limit_pages(db, None)  # room again: nobody restarts anything
    for _ in range(200):
        await api.advance(10)
        done = await api.get(f"/api/v1/tasks/{task['id']}")
        if done["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert (done["status"], done["sent"], done["succeeded"], done["failed"]) == ("completed", 5000, 5000, 0), done
    # the carrier's own record: every number accepted once, and the gateway counted each once
    truth, cursor = [], None
    while True:
        page = await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}&limit=1000"
                             + (f"&cursor={cursor}" if cursor else ""))
        truth += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(truth) == 5000 and len({t["number"] for t in truth}) == 5000
    rows = await db.fetchall("SELECT result, COUNT(*) FROM messages WHERE task_id=? GROUP BY result", (task["id"],))
    assert rows == [(1, 5000)]
    await assert_counters_match_rows_of(service.server.app[storage_key], service.server.app[clock_key].now())
    status, health = await _health(service)
    assert status == 200 and health["status"] == "ok", health


async def test_receipts_refused_while_the_disk_is_full_are_applied_later(api, service):
    db = service.server.app[db_key]
    await api.profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 60},
                      moderation={"review_seconds": 0})
    aud = await api.audience(NUMBERS[:500], name="r")
    task = await api.task(aud["id"], name="receipts")
    await api.advance(1)
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["sent"] == 500
    await _limit_pages(db, 0)
    await db.writer.execute("PRAGMA max_page_count=1")  # not even an update in place fits: every write fails
    try:
        status, body = await api.call("POST", "/api/v1/clock/advance", json={"seconds": 120})
    finally:
        await _limit_pages(db, None)
    assert status in (200, 503), body  # never a 500; nothing half-applied either way
    for _ in range(50):
        await api.advance(1)
        done = await api.get(f"/api/v1/tasks/{task['id']}")
        if done["status"] == "completed":
            break
    assert (done["status"], done["succeeded"]) == ("completed", 500)
    await assert_counters_match_rows_of(service.server.app[storage_key], service.server.app[clock_key].now())


async def test_abandoned_partial_audiences_are_swept_at_start(tmp_path, aiohttp_client):
    from gateway.web.app import create_app
    from tests.conftest import make_config

    path = tmp_path / "smslab.db"
    first = create_app(make_config(tmp_path))
    client = await aiohttp_client(first)
    await client.close()
    # what a kill -9 during an upload leaves: an unready audience with thousands of entries
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO workspaces(id, name, created_at) VALUES (77, 'w', 0)")
    conn.execute("INSERT INTO audiences(id, workspace_id, name, source, created_at, ready) VALUES (5, 77, 'half', 'upload', 0, 0)")
    conn.executemany("INSERT INTO audience_members(audience_id, seq, raw, e164, kind) VALUES (5, ?, '1', '+1', 0)",
                     [(i,) for i in range(60_000)])
    conn.commit()
    conn.close()
    second = create_app(make_config(tmp_path))
    client = await aiohttp_client(second)
    db = second[db_key]
    assert await db.fetchone("SELECT COUNT(*) FROM audiences") == (0,)
    assert await db.fetchone("SELECT COUNT(*) FROM audience_members") == (0,)
    await client.close()


async def test_an_upload_the_full_disk_broke_is_swept_once_there_is_room(api, service):
    from gateway.web.keys import uploads_key

    db = service.server.app[db_key]
    big = "phone\n" + "".join(f"+86138{i:08d}\n" for i in range(20_000))
    await _limit_pages(db, 3)
    status, body = await api.call("POST", "/api/v1/audiences?name=too-big", data=big.encode(),
                                  headers={"Content-Type": "text/csv"})
    assert status == 503 and body["error"]["code"] == "storage_unavailable", body
    await _limit_pages(db, None)
    uploads = service.server.app[uploads_key]
    # the clean-up may itself have failed: the first sweep that finds it suspects it, the next removes it
    assert await uploads.sweep() + await uploads.sweep() in (0, 1)
    assert await db.fetchone("SELECT COUNT(*) FROM audiences WHERE ready=0") == (0,)
    assert await db.fetchone("SELECT COUNT(*) FROM audience_members") == (0,)
    assert (await api.get("/api/v1/audiences"))["items"] == []
