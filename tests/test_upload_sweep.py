"""The sweep of abandoned audience uploads never takes a live upload for an abandoned one.

An upload's audience row is committed a moment before the upload marks it active; a periodic
sweep reading the unready audiences in that moment must leave it alone. Run against the real
storage (SQLite file)."""

from __future__ import annotations

from gateway.audiences import Uploads
from gateway.storage import open_storage


async def test_a_sweep_between_the_commit_and_the_mark_spares_the_upload(tmp_path):
    storage = open_storage(str(tmp_path / "s.db"))
    await storage.open()
    try:
        ws = 1
        uploads = Uploads(storage.audiences)
        abandoned = await storage.audiences.begin(ws, "left-behind", "upload", None, 0.0)
        assert await uploads.sweep() == 0  # first sight: only suspected
        live = await storage.audiences.begin(ws, "in-flight", "upload", None, 1.0)  # committed, not yet marked
        assert await uploads.sweep() == 1  # the abandoned one, seen twice, goes
        uploads.active.add(live)  # the upload marks it now
        assert await uploads.sweep() == 0
        assert await storage.audiences.unready() == [live]
        assert abandoned not in await storage.audiences.unready()
        uploads.active.discard(live)  # the upload died without cleaning up
        assert await uploads.sweep() == 0 and await uploads.sweep() == 1
        assert await storage.audiences.unready() == []
    finally:
        await storage.close()


async def test_at_start_every_unready_audience_goes_at_once(tmp_path):
    storage = open_storage(str(tmp_path / "s.db"))
    await storage.open()
    try:
        for i in range(3):
            await storage.audiences.begin(1, f"a{i}", "upload", None, 0.0)
        assert await Uploads(storage.audiences).sweep(at_start=True) == 3
        assert await storage.audiences.unready() == []
    finally:
        await storage.close()
