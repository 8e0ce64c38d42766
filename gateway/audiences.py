"""Audiences: named lists of phone numbers, stored entry by entry.

An audience keeps every entry it was given, classified once when stored (ok, empty, invalid,
duplicate), so a task's skipped counts come straight from it. Entries are written in batches as
they arrive, so an upload of millions of numbers never sits in memory whole; the audience
becomes usable (``ready``) only when the last entry is in and duplicates were marked.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from .clock import to_rfc3339
from .domain import numbers as N
from .domain.labels import check_name
from .errors import Conflict, NotFound
from . import paging

log = logging.getLogger(__name__)

KIND_CODES = {N.OK: 0, N.EMPTY: 1, N.INVALID: 2}
WRITE_BATCH = 5000


def audience_json(row: tuple) -> dict[str, Any]:
    aid, name, source, size, created_at, source_task_id = row
    out = {"id": aid, "name": name, "size": size, "source": source, "created_at": to_rfc3339(created_at)}
    if source_task_id is not None:
        out["source_task_id"] = source_task_id
    return out


_COLUMNS = "id, name, source, size, created_at, source_task_id"


def name_taken(name: str) -> Conflict:
    return Conflict(f"name: an audience named {name!r} already exists in this workspace", field="name", code="name_taken")


SWEEP_CHUNK = 50_000


class Uploads:
    """The audiences being uploaded by this process, and the sweep of abandoned ones.

    An audience is written entry by entry and becomes visible (``ready``) only when complete. One
    left half-written — the process was killed mid-upload, or the disk filled up and even the
    clean-up failed — would keep its rows (and the disk full) for ever: ``sweep`` deletes every
    unready audience that no upload of this process is writing, at start and then periodically
    (the engine calls it)."""

    def __init__(self) -> None:
        self.active: set[int] = set()

    async def sweep(self, db) -> int:
        """Delete abandoned partial audiences; returns how many."""
        rows = await db.fetchall("SELECT id FROM audiences WHERE ready=0")
        abandoned = [aid for (aid,) in rows if aid not in self.active]
        for aid in abandoned:
            while True:
                async with db.transaction() as conn:
                    cur = await conn.execute(
                        "DELETE FROM audience_members WHERE audience_id=? AND seq IN"
                        " (SELECT seq FROM audience_members WHERE audience_id=? LIMIT ?)", (aid, aid, SWEEP_CHUNK))
                    done = cur.rowcount < SWEEP_CHUNK
                    if done:
                        await conn.execute("DELETE FROM audiences WHERE id=? AND ready=0", (aid,))
                if done:
                    break
        return len(abandoned)


class AudienceWriter:
    """Streams entries into a new audience: ``begin``, ``add`` repeatedly, then ``finish`` (or
    ``abort``)."""

    def __init__(self, db, clock, region: str, workspace_id: int, name: str, source: str = "upload", source_task_id=None,
                 uploads: Uploads | None = None):
        self.db, self.clock, self.region = db, clock, region
        self.workspace_id, self.name, self.source, self.source_task_id = workspace_id, name, source, source_task_id
        self.uploads = uploads or Uploads()
        self.audience_id: int | None = None
        self.seq = 0
        self._pending: list[tuple] = []

    async def begin(self) -> None:
        """Create the (not yet ready) audience: a taken name is refused before any entry is read."""
        try:
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    "INSERT INTO audiences(workspace_id, name, source, source_task_id, created_at) VALUES (?,?,?,?,?)",
                    (self.workspace_id, self.name, self.source, self.source_task_id, self.clock.now()),
                )
                self.audience_id = cur.lastrowid
        except sqlite3.IntegrityError:
            raise name_taken(self.name) from None
        self.uploads.active.add(self.audience_id)

    async def add(self, raws: list[Any]) -> None:
        if self.audience_id is None:
            await self.begin()
        classify, region = N.classify, self.region
        for raw in raws:
            if raw is not None and not isinstance(raw, str):
                raw = str(raw)
            kind, e164 = classify(raw, region)
            self._pending.append((self.audience_id, self.seq, raw, e164, KIND_CODES[kind]))
            self.seq += 1
        if len(self._pending) >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        async with self.db.transaction() as conn:
            await conn.executemany("INSERT INTO audience_members(audience_id, seq, raw, e164, kind) VALUES (?,?,?,?,?)", rows)

    async def finish(self) -> dict[str, Any]:
        if self.audience_id is None:
            await self.begin()
        await self._flush()
        async with self.db.transaction() as conn:
            # the first occurrence of a number is kept; later ones are duplicates
            await conn.execute(
                """UPDATE audience_members SET kind=3 WHERE audience_id=:a AND kind=0 AND seq NOT IN (
                       SELECT MIN(seq) FROM audience_members WHERE audience_id=:a AND kind=0 GROUP BY e164)""",
                {"a": self.audience_id},
            )
            await conn.execute("UPDATE audiences SET size=?, ready=1 WHERE id=?", (self.seq, self.audience_id))
        self.uploads.active.discard(self.audience_id)
        return await get(self.db, self.workspace_id, self.audience_id)

    async def abort(self) -> None:
        """Remove what was written. Should that fail too (a full disk), the rows are left to
        ``Uploads.sweep``, which no longer sees this upload as active."""
        if self.audience_id is None:
            return
        self.uploads.active.discard(self.audience_id)
        try:
            async with self.db.transaction() as conn:
                await conn.execute("DELETE FROM audience_members WHERE audience_id=?", (self.audience_id,))
                await conn.execute("DELETE FROM audiences WHERE id=?", (self.audience_id,))
        except Exception:
            log.warning("could not remove the partial audience %s now; the sweep will", self.audience_id, exc_info=True)


async def get(db, workspace_id: int, audience_id: int) -> dict[str, Any]:
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM audiences WHERE id=? AND workspace_id=? AND ready=1 AND deleted=0", (audience_id, workspace_id)
    )
    if row is None:
        raise NotFound(f"audience {audience_id} not found")
    return audience_json(row)


async def page(db, workspace_id: int, limit: int, cursor: int | None) -> dict[str, Any]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM audiences WHERE workspace_id=? AND ready=1 AND deleted=0 AND id < ? ORDER BY id DESC LIMIT ?",
        (workspace_id, cursor if cursor is not None else 1 << 62, limit + 1),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [audience_json(r) for r in rows], "next_cursor": paging.encode(rows[-1][0]) if more else None}


async def delete(db, workspace_id: int, audience_id: int) -> None:
    await get(db, workspace_id, audience_id)
    async with db.transaction() as conn:
        await conn.execute("UPDATE audiences SET deleted=1 WHERE id=?", (audience_id,))
        # tasks that were not sent yet keep pointing at it and fail with a reason when due;
        # the entries themselves go once no task is still reading them
        await conn.execute(
            """DELETE FROM audience_members WHERE audience_id=? AND NOT EXISTS (
                   SELECT 1 FROM tasks WHERE audience_id=? AND status IN ('moderating','scheduled','sending'))""",
            (audience_id, audience_id),
        )
