"""The lifecycle area on SQLite (``gateway.storage.lifecycle.LifecycleStore``)."""

from __future__ import annotations

import sqlite3

from gateway.domain.lifecycle import Status

from ..lifecycle import ModerationDue, TaskToSend, Upcoming
from .db import Database

# on a jumped clock the step runs later than the last result came in: complete at that
_COMPLETED_AT = "MIN(?, MAX(dispatch_done_at, COALESCE(last_result_at, dispatch_done_at)))"


class SqliteLifecycleStore:
    def __init__(self, db: Database):
        self.db = db

    async def transition(self, task_id: int, old: str, new: str, reason: str | None, now: float,
                         unchanged_since: float | None = None, finished: bool = False) -> bool:
        extra = ""
        if finished:
            extra = f", completed_at={_COMPLETED_AT}" if new == Status.COMPLETED else ", completed_at=?"
        guard, guard_args = ("", ()) if unchanged_since is None else (" AND updated_at=?", (unchanged_since,))
        changed = await self.db.execute(
            f"UPDATE tasks SET status=?, status_reason=?, updated_at=?{extra} WHERE id=? AND status=?{guard}",
            (new, reason, now, *((now,) if finished else ()), task_id, old, *guard_args),
        )
        return bool(changed)

    async def due_for_moderation(self, now: float) -> list[ModerationDue]:
        rows = await self.db.fetchall(
            "SELECT id, name, platform, sms_type, signature, content, send_type, send_at, updated_at, workspace_id"
            " FROM tasks WHERE status='moderating' AND moderation_due_at <= ? ORDER BY moderation_due_at, id",
            (now,),
        )
        return [ModerationDue(*row) for row in rows]

    async def due_to_start(self, now: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status='scheduled' AND (send_type='immediate' OR send_at <= ?) ORDER BY id", (now,)
        )
        return [task_id for (task_id,) in rows]

    async def sending_undispatched(self) -> list[int]:
        rows = await self.db.fetchall("SELECT id FROM tasks WHERE status='sending' AND dispatch_done_at IS NULL")
        return [task_id for (task_id,) in rows]

    async def finished_sending(self) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status='sending' AND dispatch_done_at IS NOT NULL AND sent = succeeded + failed"
        )
        return [task_id for (task_id,) in rows]

    async def upcoming(self, now: float, submitted_before: float) -> Upcoming:
        row = await self.db.fetchone(
            """SELECT
                 (SELECT MIN(t) FROM (
                    SELECT MIN(moderation_due_at) AS t FROM tasks WHERE status='moderating' AND moderation_due_at > :now
                    UNION ALL SELECT MIN(send_at) FROM tasks WHERE status='scheduled' AND send_at > :now
                    UNION ALL SELECT MIN(details_expire_at) FROM tasks WHERE details_purged=0 AND details_expire_at > :now)),
                 (SELECT MIN(dispatch_started_at) FROM tasks WHERE status='sending' AND dispatch_started_at >= :before),
                 (SELECT MIN(dispatch_done_at) FROM tasks WHERE status='sending' AND dispatch_done_at >= :before)""",
            {"now": now, "before": submitted_before},
        )
        return Upcoming(*row) if row else Upcoming(None, None, None)

    async def task_to_send(self, task_id: int) -> TaskToSend | None:
        row = await self.db.fetchone(
            "SELECT platform, audience_id, content, signature, parts, cursor, accepted, skipped, dispatch_started_at,"
            " sms_type, name, workspace_id FROM tasks WHERE id=? AND status='sending'",
            (task_id,),
        )
        return None if row is None else TaskToSend(*row)

    async def start_dispatch(self, task_id: int, audience_id: int, now: float) -> str | None:
        return await self.db.write(_start_dispatch, task_id, audience_id, now)

    async def sent_and_skipped(self, task_id: int) -> tuple[int, str]:
        row = await self.db.fetchone("SELECT sent, skipped FROM tasks WHERE id=?", (task_id,))
        return row[0], row[1]

    async def dispatch_done(self, task_id: int, now: float, details_expire_at: float) -> None:
        await self.db.execute(
            "UPDATE tasks SET dispatch_done_at=?, details_expire_at=? WHERE id=?", (now, details_expire_at, task_id)
        )


def _start_dispatch(conn: sqlite3.Connection, task_id: int, audience_id: int, now: float) -> str | None:
    audience = conn.execute("SELECT size, deleted FROM audiences WHERE id=?", (audience_id,)).fetchone()
    if audience is None or audience[1]:
        return "deleted"
    if audience[0] == 0:
        return "empty"
    conn.execute("UPDATE tasks SET dispatch_started_at=?, audience_size=? WHERE id=?", (now, audience[0], task_id))
    return None
