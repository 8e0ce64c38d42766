"""Tasks in SQLite (the interface and its guarantees: ``gateway/storage/tasks.py``)."""

from __future__ import annotations

import sqlite3

from ...domain import results as R
from ...domain.lifecycle import Status
from ..errors import NameTaken
from ..tasks import Counters, DetailsState, EditableTask, MessageRow, TaskFields, TaskRow

# Until the send freezes it, a task's audience size is its audience's current size.
ROW_COLUMNS = (
    "id, name, sub_activities, content_summary, audience_id, audience_name,"
    " CASE WHEN dispatch_started_at IS NULL THEN COALESCE((SELECT a.size FROM audiences a"
    " WHERE a.id = tasks.audience_id AND a.deleted = 0), 0) ELSE audience_size END, sent, succeeded, failed,"
    " platform, sms_type, send_type, send_at, status, status_reason, created_at, content, signature, skipped, segments,"
    " details_expire_at, details_purged, parts, encoding, late_receipts, duplicate_receipts, dispatch_started_at,"
    " completed_at, updated_at"
)


def results_sql(codes: list[int]) -> str:
    """The WHERE terms choosing messages by result, after ``task_id=?``. The codes are written
    as literals (they come from ``RESULT_CODES``, never from the request) so that SQLite can see
    that a choice without succeeded numbers is answered by the partial index
    ``messages_unsettled``: a page of failed numbers walks the failed and pending ones, not the
    whole task (schema migration 8)."""
    chosen = sorted(set(codes))
    if chosen == sorted(R.RESULT_NAMES):
        return ""
    terms = f" AND result IN ({','.join(str(int(c)) for c in chosen)})"
    return terms if R.SUCCEEDED in chosen else terms + f" AND result <> {R.SUCCEEDED}"


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _insert(conn: sqlite3.Connection, ws: int, f: TaskFields, now: float) -> int:
    cur = conn.execute(
        "INSERT INTO tasks(workspace_id, name, platform, sms_type, signature, content, content_summary,"
        " audience_id, audience_name, send_type, send_at, sub_activities, status, created_at, updated_at,"
        " moderation_due_at, parts, encoding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (ws, f.name, f.platform, f.sms_type, f.signature, f.content, f.content_summary, f.audience_id, f.audience_name,
         f.send_type, f.send_at, f.sub_activities, Status.MODERATING, now, now, f.moderation_due_at, f.parts, f.encoding),
    )
    return cur.lastrowid


def _update(conn: sqlite3.Connection, ws: int, task_id: int, status: str, f: TaskFields, now: float) -> bool:
    cur = conn.execute(
        "UPDATE tasks SET name=?, platform=?, sms_type=?, signature=?, content=?, content_summary=?, audience_id=?,"
        " audience_name=?, send_type=?, send_at=?, sub_activities=?, status='moderating', status_reason=NULL,"
        " updated_at=?, moderation_due_at=?, parts=?, encoding=? WHERE id=? AND workspace_id=? AND status=?",
        (f.name, f.platform, f.sms_type, f.signature, f.content, f.content_summary, f.audience_id, f.audience_name,
         f.send_type, f.send_at, f.sub_activities, now, f.moderation_due_at, f.parts, f.encoding, task_id, ws, status),
    )
    return cur.rowcount > 0


def _delete(conn: sqlite3.Connection, ws: int, task_id: int, status: str) -> bool:
    return conn.execute("DELETE FROM tasks WHERE id=? AND workspace_id=? AND status=?", (task_id, ws, status)).rowcount > 0


class SqliteTaskStore:
    def __init__(self, db):
        self.db = db

    async def create(self, workspace_id: int, fields: TaskFields, now: float) -> int:
        try:
            return await self.db.write(_insert, workspace_id, fields, now)
        except sqlite3.IntegrityError:
            raise NameTaken(fields.name) from None

    async def editable(self, workspace_id: int, task_id: int) -> EditableTask | None:
        row = await self.db.fetchone(
            "SELECT status, send_type, send_at, name, platform, sms_type, signature, content, audience_id, sub_activities"
            " FROM tasks WHERE id=? AND workspace_id=?",
            (task_id, workspace_id),
        )
        return EditableTask(*row) if row is not None else None

    async def update(self, workspace_id: int, task_id: int, expected_status: str, fields: TaskFields, now: float) -> bool:
        try:
            return await self.db.write(_update, workspace_id, task_id, expected_status, fields, now)
        except sqlite3.IntegrityError:
            raise NameTaken(fields.name) from None

    async def delete(self, workspace_id: int, task_id: int, expected_status: str) -> bool:
        return await self.db.write(_delete, workspace_id, task_id, expected_status)

    async def get(self, workspace_id: int, task_id: int) -> TaskRow | None:
        row = await self.db.fetchone(f"SELECT {ROW_COLUMNS} FROM tasks WHERE id=? AND workspace_id=?", (task_id, workspace_id))
        return TaskRow(*row) if row is not None else None

    async def exists(self, workspace_id: int, task_id: int) -> bool:
        return await self.db.fetchone("SELECT 1 FROM tasks WHERE id=? AND workspace_id=?", (task_id, workspace_id)) is not None

    async def page(self, workspace_id: int, limit: int, before: int | None, statuses: list[str],
                   platform: str | None, text: str | None) -> list[TaskRow]:
        where, args = ["workspace_id=?"], [workspace_id]
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if platform:
            where.append("platform=?")
            args.append(platform)
        if text:
            where.append("(name LIKE ? ESCAPE '\\' OR content_summary LIKE ? ESCAPE '\\' OR audience_name LIKE ? ESCAPE '\\')")
            args += [_like(text)] * 3
        if before is not None:
            where.append("id < ?")
            args.append(before)
        rows = await self.db.fetchall(
            f"SELECT {ROW_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit)
        )
        return [TaskRow(*r) for r in rows]

    async def details(self, workspace_id: int, task_id: int) -> DetailsState | None:
        row = await self.db.fetchone("SELECT details_purged, details_expire_at FROM tasks WHERE id=? AND workspace_id=?",
                                     (task_id, workspace_id))
        return DetailsState(bool(row[0]), row[1]) if row is not None else None

    async def counters(self, task_id: int) -> Counters:
        return Counters(*await self.db.fetchone("SELECT sent, succeeded, failed FROM tasks WHERE id=?", (task_id,)))

    @staticmethod
    def _filter(task_id: int, results: list[int], digits: str) -> tuple[str, list]:
        where, args = f"task_id=?{results_sql(results)}", [task_id]
        if digits:
            where += " AND number LIKE ?"
            args.append(f"%{digits}%")
        return where, args

    async def messages(self, task_id: int, results: list[int], digits: str, after: int | None, limit: int) -> list[MessageRow]:
        where, args = self._filter(task_id, results, digits)
        rows = await self.db.fetchall(
            f"SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE {where}"
            " AND id > ? ORDER BY id LIMIT ?",
            (*args, after if after is not None else -1, limit),
        )
        return [MessageRow(*r) for r in rows]

    async def count_messages(self, task_id: int, results: list[int], digits: str) -> int:
        where, args = self._filter(task_id, results, digits)
        (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM messages WHERE {where}", args)
        return total

    async def count_by_status(self) -> list[tuple[str, int]]:
        return [(status, count) for status, count in await self.db.fetchall("SELECT status, COUNT(*) FROM tasks GROUP BY status")]
