"""Tasks on PostgreSQL (the interface and its guarantees: ``gateway/storage/tasks.py``); the same
statements as ``sqlite/tasks.py`` with PostgreSQL's spelling.

Text searches compare with ``ILIKE`` under ``COLLATE "C"``: that folds ASCII letters only, which is
what SQLite's ``LIKE`` does, so a search finds the same tasks on both backends.
"""

from __future__ import annotations

import asyncpg

from ...domain import results as R
from ...domain.lifecycle import Status
from ..errors import NameTaken
from ..tasks import Counters, DetailsState, EditableTask, MessageRow, TaskFields, TaskRow
from .db import Database

# Until the send freezes it, a task's audience size is its audience's current size.
ROW_COLUMNS = (
    "id, name, sub_activities, content_summary, audience_id, audience_name,"
    " CASE WHEN dispatch_started_at IS NULL THEN COALESCE((SELECT a.size FROM audiences a"
    " WHERE a.id = tasks.audience_id AND a.deleted = 0), 0) ELSE audience_size END, sent, succeeded, failed,"
    " platform, sms_type, send_type, send_at, status, status_reason, created_at, content, signature, skipped, segments,"
    " details_expire_at, details_purged, parts, encoding, late_receipts, duplicate_receipts, dispatch_started_at,"
    " completed_at, updated_at"
)

_INSERT = (
    "INSERT INTO tasks(workspace_id, name, platform, sms_type, signature, content, content_summary,"
    " audience_id, audience_name, send_type, send_at, sub_activities, status, created_at, updated_at,"
    " moderation_due_at, parts, encoding) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"
    " RETURNING id"
)
_UPDATE = (
    "UPDATE tasks SET name=$1, platform=$2, sms_type=$3, signature=$4, content=$5, content_summary=$6, audience_id=$7,"
    " audience_name=$8, send_type=$9, send_at=$10, sub_activities=$11, status='moderating', status_reason=NULL,"
    " updated_at=$12, moderation_due_at=$13, parts=$14, encoding=$15 WHERE id=$16 AND workspace_id=$17 AND status=$18"
)


def results_sql(codes: list[int]) -> str:
    """The WHERE terms choosing messages by result, after ``task_id=$1``: the codes as literals
    (they come from ``RESULT_CODES``, never from the request), and ``result <> succeeded`` said
    in so many words when the choice has no succeeded numbers, so the planner can answer it from
    the partial index ``messages_unsettled`` (the pending and failed numbers, not the whole task)."""
    chosen = sorted(set(codes))
    if chosen == sorted(R.RESULT_NAMES):
        return ""
    terms = f" AND result IN ({','.join(str(int(c)) for c in chosen)})"
    return terms if R.SUCCEEDED in chosen else terms + f" AND result <> {R.SUCCEEDED}"


def like_anywhere(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class PostgresTaskStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, workspace_id: int, fields: TaskFields, now: float) -> int:
        f = fields
        try:
            row = await self.db.returning(_INSERT, (
                workspace_id, f.name, f.platform, f.sms_type, f.signature, f.content, f.content_summary, f.audience_id,
                f.audience_name, f.send_type, f.send_at, f.sub_activities, Status.MODERATING.value, now, now,
                f.moderation_due_at, f.parts, f.encoding))
        except asyncpg.UniqueViolationError:
            raise NameTaken(fields.name) from None
        return row[0]

    async def editable(self, workspace_id: int, task_id: int) -> EditableTask | None:
        row = await self.db.fetchone(
            "SELECT status, send_type, send_at, name, platform, sms_type, signature, content, audience_id, sub_activities"
            " FROM tasks WHERE id=$1 AND workspace_id=$2",
            (task_id, workspace_id),
        )
        return EditableTask(*row) if row is not None else None

    async def update(self, workspace_id: int, task_id: int, expected_status: str, fields: TaskFields, now: float) -> bool:
        f = fields
        try:
            changed = await self.db.execute(_UPDATE, (
                f.name, f.platform, f.sms_type, f.signature, f.content, f.content_summary, f.audience_id, f.audience_name,
                f.send_type, f.send_at, f.sub_activities, now, f.moderation_due_at, f.parts, f.encoding, task_id,
                workspace_id, expected_status))
        except asyncpg.UniqueViolationError:
            raise NameTaken(fields.name) from None
        return changed > 0

    async def delete(self, workspace_id: int, task_id: int, expected_status: str) -> bool:
        return await self.db.execute("DELETE FROM tasks WHERE id=$1 AND workspace_id=$2 AND status=$3",
                                     (task_id, workspace_id, expected_status)) > 0

    async def get(self, workspace_id: int, task_id: int) -> TaskRow | None:
        row = await self.db.fetchone(f"SELECT {ROW_COLUMNS} FROM tasks WHERE id=$1 AND workspace_id=$2", (task_id, workspace_id))
        return TaskRow(*row) if row is not None else None

    async def exists(self, workspace_id: int, task_id: int) -> bool:
        return await self.db.fetchone("SELECT 1 FROM tasks WHERE id=$1 AND workspace_id=$2", (task_id, workspace_id)) is not None

    async def page(self, workspace_id: int, limit: int, before: int | None, statuses: list[str],
                   platform: str | None, text: str | None) -> list[TaskRow]:
        args: list = [workspace_id]

        def arg(value) -> str:
            args.append(value)
            return f"${len(args)}"

        where = ["workspace_id=$1"]
        if statuses:
            where.append(f"status = ANY({arg(list(statuses))}::text[])")
        if platform:
            where.append(f"platform={arg(platform)}")
        if text:
            p = arg(like_anywhere(text))
            where.append(f"(name COLLATE \"C\" ILIKE {p} ESCAPE '\\' OR content_summary COLLATE \"C\" ILIKE {p} ESCAPE '\\'"
                         f" OR audience_name COLLATE \"C\" ILIKE {p} ESCAPE '\\')")
        if before is not None:
            where.append(f"id < {arg(before)}")
        rows = await self.db.fetchall(
            f"SELECT {ROW_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {arg(limit)}", args
        )
        return [TaskRow(*r) for r in rows]

    async def details(self, workspace_id: int, task_id: int) -> DetailsState | None:
        row = await self.db.fetchone("SELECT details_purged, details_expire_at FROM tasks WHERE id=$1 AND workspace_id=$2",
                                     (task_id, workspace_id))
        return DetailsState(bool(row[0]), row[1]) if row is not None else None

    async def counters(self, task_id: int) -> Counters:
        return Counters(*await self.db.fetchone("SELECT sent, succeeded, failed FROM tasks WHERE id=$1", (task_id,)))

    @staticmethod
    def _filter(task_id: int, results: list[int], digits: str) -> tuple[str, list]:
        where, args = f"task_id=$1{results_sql(results)}", [task_id]
        if digits:
            where += " AND number LIKE $2"
            args.append(f"%{digits}%")
        return where, args

    async def messages(self, task_id: int, results: list[int], digits: str, after: int | None, limit: int) -> list[MessageRow]:
        where, args = self._filter(task_id, results, digits)
        n = len(args)
        rows = await self.db.fetchall(
            f"SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE {where}"
            f" AND id > ${n + 1} ORDER BY id LIMIT ${n + 2}",
            (*args, after if after is not None else -1, limit),
        )
        return [MessageRow(*r) for r in rows]

    async def count_messages(self, task_id: int, results: list[int], digits: str) -> int:
        where, args = self._filter(task_id, results, digits)
        (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM messages WHERE {where}", args)
        return total

    async def count_by_status(self) -> list[tuple[str, int]]:
        # ORDER BY: SQLite's GROUP BY hands the groups over sorted, PostgreSQL's hash may not
        rows = await self.db.fetchall("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status COLLATE \"C\"")
        return [(status, count) for status, count in rows]
