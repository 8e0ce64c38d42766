"""The lifecycle area on PostgreSQL (``gateway.storage.lifecycle.LifecycleStore``): SQLite's
statements, each a single statement or one transaction. A guarded UPDATE (``WHERE status=…``)
is what lets several instances run the engine on one database: the second writer finds the
task moved already and changes nothing."""

from __future__ import annotations

import asyncpg

from gateway.domain.lifecycle import Status

from ..lifecycle import ModerationDue, TaskToSend, Upcoming
from .db import Database

# on a jumped clock the step runs later than the last result came in: complete at that (NULL
# without a dispatch end, as SQLite's MIN/MAX give; GREATEST/LEAST would skip the NULL)
_COMPLETED_AT = ("CASE WHEN dispatch_done_at IS NULL THEN NULL"
                 " ELSE LEAST({now}, GREATEST(dispatch_done_at, COALESCE(last_result_at, dispatch_done_at))) END")


class PostgresLifecycleStore:
    def __init__(self, db: Database):
        self.db = db

    async def transition(self, task_id: int, old: str, new: str, reason: str | None, now: float,
                         unchanged_since: float | None = None, finished: bool = False) -> bool:
        args: list = [new, reason, float(now), task_id, old]
        extra = ""
        if finished:
            extra = ", completed_at=" + (_COMPLETED_AT.format(now="$3::float8") if new == Status.COMPLETED else "$3::float8")
        guard = ""
        if unchanged_since is not None:
            args.append(float(unchanged_since))
            guard = " AND updated_at=$6"
        changed = await self.db.execute(
            f"UPDATE tasks SET status=$1, status_reason=$2, updated_at=$3{extra} WHERE id=$4 AND status=$5{guard}", args
        )
        return bool(changed)

    async def due_for_moderation(self, now: float) -> list[ModerationDue]:
        rows = await self.db.fetchall(
            "SELECT id, name, platform, sms_type, signature, content, send_type, send_at, updated_at, workspace_id"
            " FROM tasks WHERE status='moderating' AND moderation_due_at <= $1 ORDER BY moderation_due_at, id",
            (float(now),),
        )
        return [ModerationDue(*row) for row in rows]

    async def due_to_start(self, now: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status='scheduled' AND (send_type='immediate' OR send_at <= $1) ORDER BY id",
            (float(now),),
        )
        return [task_id for (task_id,) in rows]

    async def sending_undispatched(self) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status='sending' AND dispatch_done_at IS NULL ORDER BY id")
        return [task_id for (task_id,) in rows]

    async def finished_sending(self) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status='sending' AND dispatch_done_at IS NOT NULL AND sent = succeeded + failed"
            " ORDER BY id"
        )
        return [task_id for (task_id,) in rows]

    async def upcoming(self, now: float, submitted_before: float) -> Upcoming:
        row = await self.db.fetchone(
            """SELECT
                 (SELECT MIN(t) FROM (
                    SELECT MIN(moderation_due_at) AS t FROM tasks WHERE status='moderating' AND moderation_due_at > $1
                    UNION ALL SELECT MIN(send_at) FROM tasks WHERE status='scheduled' AND send_at > $1
                    UNION ALL SELECT MIN(details_expire_at) FROM tasks WHERE details_purged=0 AND details_expire_at > $1) AS x),
                 (SELECT MIN(dispatch_started_at) FROM tasks WHERE status='sending' AND dispatch_started_at >= $2),
                 (SELECT MIN(dispatch_done_at) FROM tasks WHERE status='sending' AND dispatch_done_at >= $2)""",
            (float(now), float(submitted_before)),
        )
        return Upcoming(*row) if row else Upcoming(None, None, None)

    async def task_to_send(self, task_id: int) -> TaskToSend | None:
        row = await self.db.fetchone(
            "SELECT platform, audience_id, content, signature, parts, cursor, accepted, skipped, dispatch_started_at,"
            " sms_type, name, workspace_id FROM tasks WHERE id=$1 AND status='sending'",
            (task_id,),
        )
        return None if row is None else TaskToSend(*row)

    async def start_dispatch(self, task_id: int, audience_id: int, now: float) -> str | None:
        return await self.db.write(_start_dispatch, task_id, audience_id, float(now))

    async def sent_and_skipped(self, task_id: int) -> tuple[int, str]:
        row = await self.db.fetchone("SELECT sent, skipped FROM tasks WHERE id=$1", (task_id,))
        return row[0], row[1]

    async def dispatch_done(self, task_id: int, now: float, details_expire_at: float) -> None:
        await self.db.execute(
            "UPDATE tasks SET dispatch_done_at=$1, details_expire_at=$2 WHERE id=$3",
            (float(now), float(details_expire_at), task_id),
        )


async def _start_dispatch(conn: asyncpg.Connection, task_id: int, audience_id: int, now: float) -> str | None:
    # FOR SHARE: the audience cannot be deleted between this read and the task's update
    audience = await conn.fetchrow("SELECT size, deleted FROM audiences WHERE id=$1 FOR SHARE", audience_id)
    if audience is None or audience[1]:
        return "deleted"
    if audience[0] == 0:
        return "empty"
    await conn.execute("UPDATE tasks SET dispatch_started_at=$1, audience_size=$2 WHERE id=$3", now, audience[0], task_id)
    return None
