"""Send tasks: create, edit, delete, list, details, per-number rows, audiences from results.

Plain Python over the Database: the web layer only turns HTTP into these calls. The rules
themselves (edit window, segmentation, results) live in ``gateway.domain``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import msgspec

from . import paging
from .clock import parse_rfc3339, to_rfc3339
from .domain import numbers as N
from .domain import results as R
from .domain.labels import check_name, check_text
from .domain.content import ContentError, render, summary
from .domain.lifecycle import Status, modification_lock
from .domain.segments import MAX_PARTS, segment, signed_text
from .errors import Conflict, Gone, Invalid, NotFound
# the request bodies are declared with the rest of the API's schemas (re-exported here)
from .web.schemas import Content, GenerateAudience, Id, SubActivity, TaskCreate, TaskPatch, Template  # noqa: F401

SMS_TYPES = ("marketing", "notification", "digital")
SEND_TYPES = ("immediate", "scheduled")


# Until the send freezes it, a task's audience size is its audience's current size.
_ROW_COLUMNS = (
    "id, name, sub_activities, content_summary, audience_id, audience_name,"
    " CASE WHEN dispatch_started_at IS NULL THEN COALESCE((SELECT a.size FROM audiences a"
    " WHERE a.id = tasks.audience_id AND a.deleted = 0), 0) ELSE audience_size END, sent, succeeded, failed,"
    " platform, sms_type, send_type, send_at, status, status_reason, created_at, content, signature, skipped, segments,"
    " details_expire_at, details_purged, parts, encoding, late_receipts, duplicate_receipts, dispatch_started_at,"
    " completed_at, updated_at"
)


class TaskService:
    def __init__(self, db, clock, platforms: dict, config, wake=lambda: None):
        self.db = db
        self.clock = clock
        self.platforms = platforms
        self.config = config
        self.wake = wake

    # -- validation ----------------------------------------------------------------------------
    def _content(self, content: Content, signature: str) -> tuple[dict, str, Any]:
        if (content.text is None) == (content.template is None):
            raise Invalid("content: give exactly one of content.text or content.template", field="content")
        if content.text is not None and not content.text.strip():
            raise Invalid("content.text: must not be empty", field="content.text")
        if content.template is not None:
            if not content.template.topic.strip():
                raise Invalid("content.template.topic: must not be empty", field="content.template.topic")
            if not content.template.body.strip():
                raise Invalid("content.template.body: must not be empty", field="content.template.body")
        data = msgspec.to_builtins(content)
        data = {k: v for k, v in data.items() if v is not None}
        try:
            text = signed_text(signature, render(data))
        except ContentError as exc:
            raise Invalid(f"{exc.field}: {exc}", field=exc.field) from None
        seg = segment(text)
        if seg.parts > MAX_PARTS:
            field = "content.text" if content.text is not None else "content.template.body"
            raise Invalid(f"{field}: the message would be {seg.parts} parts; at most {MAX_PARTS}", field=field)
        return data, text, seg

    async def _audience(self, ws: int, audience_id: int) -> str:
        row = await self.db.fetchone(
            "SELECT name FROM audiences WHERE id=? AND workspace_id=? AND ready=1 AND deleted=0", (audience_id, ws)
        )
        if row is None:
            raise Invalid(f"audience_id: audience {audience_id} not found", field="audience_id")
        return row[0]

    def _send_at(self, send_type: str, send_at: str | None) -> float | None:
        if send_type not in SEND_TYPES:
            raise Invalid(f"send_type: one of {', '.join(SEND_TYPES)}", field="send_type")
        if send_type == "immediate":
            return None
        if not send_at:
            raise Invalid("send_at: required when send_type is scheduled", field="send_at")
        try:
            when = parse_rfc3339(send_at)
        except ValueError:
            raise Invalid("send_at: not an RFC 3339 time between 1970 and the year 9000", field="send_at") from None
        if when <= self.clock.now():
            raise Invalid("send_at: must be in the future", field="send_at")
        return when

    def _simple(self, name: str, platform: str, sms_type: str, signature: str, subs: list[SubActivity] | None) -> None:
        check_name(name)
        check_text(signature, "signature")
        for i, sub in enumerate(subs or []):
            check_name(sub.name, f"sub_activities.{i}.name")
            if isinstance(sub.id, str):
                check_name(sub.id, f"sub_activities.{i}.id")
        if platform not in self.platforms:
            raise Invalid(f"platform: unknown platform {platform!r}; installed: {', '.join(sorted(self.platforms))}", field="platform")
        if sms_type not in SMS_TYPES:
            raise Invalid(f"sms_type: one of {', '.join(SMS_TYPES)}", field="sms_type")
        if len(signature) > 40:
            raise Invalid("signature: at most 40 characters", field="signature")

    def _moderation_due(self, platform: str, ws: int) -> float:
        return self.clock.now() + self.platforms[platform].for_workspace(ws).moderation_delay()

    # -- commands ------------------------------------------------------------------------------
    async def create(self, ws: int, body: TaskCreate) -> dict:
        self._simple(body.name, body.platform, body.sms_type, body.signature, body.sub_activities)
        data, text, seg = self._content(body.content, body.signature)
        send_at = self._send_at(body.send_type, body.send_at)
        audience_name = await self._audience(ws, body.audience_id)
        now = self.clock.now()
        try:
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    "INSERT INTO tasks(workspace_id, name, platform, sms_type, signature, content, content_summary,"
                    " audience_id, audience_name, send_type, send_at, sub_activities, status, created_at, updated_at,"
                    " moderation_due_at, parts, encoding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (ws, body.name.strip(), body.platform, body.sms_type, body.signature, json.dumps(data, ensure_ascii=False),
                     summary(data), body.audience_id, audience_name, body.send_type, send_at,
                     json.dumps(msgspec.to_builtins(body.sub_activities), ensure_ascii=False), Status.MODERATING,
                     now, now, self._moderation_due(body.platform, ws), seg.parts, seg.encoding),
                )
                task_id = cur.lastrowid
        except sqlite3.IntegrityError:
            raise Conflict(f"name: a task named {body.name!r} already exists in this workspace", field="name", code="name_taken") from None
        self.wake()
        return await self.get(ws, task_id)

    async def _locked_row(self, ws: int, task_id: int) -> tuple:
        row = await self.db.fetchone(
            "SELECT status, send_type, send_at, name, platform, sms_type, signature, content, audience_id, sub_activities"
            " FROM tasks WHERE id=? AND workspace_id=?",
            (task_id, ws),
        )
        if row is None:
            raise NotFound(f"task {task_id} not found")
        reason = modification_lock(row[0], row[1], row[2], self.clock.now())
        if reason:
            raise Conflict(f"the task cannot be changed: {reason}", code="task_locked")
        return row

    async def update(self, ws: int, task_id: int, patch: TaskPatch) -> dict:
        row = await self._locked_row(ws, task_id)
        status, send_type, send_at, name, platform, sms_type, signature, content, audience_id, subs = row
        name = patch.name if patch.name is not None else name
        platform = patch.platform if patch.platform is not None else platform
        sms_type = patch.sms_type if patch.sms_type is not None else sms_type
        signature = patch.signature if patch.signature is not None else signature
        self._simple(name, platform, sms_type, signature, patch.sub_activities)
        content_struct = patch.content if patch.content is not None else msgspec.convert(json.loads(content), Content)
        data, text, seg = self._content(content_struct, signature)
        new_send_type = patch.send_type if patch.send_type is not None else send_type
        if patch.send_at is not None or patch.send_type is not None:
            new_send_at = self._send_at(new_send_type, patch.send_at if patch.send_at is not None else (to_rfc3339(send_at) if send_at else None))
        else:
            new_send_at = send_at
        audience_id = patch.audience_id if patch.audience_id is not None else audience_id
        audience_name = await self._audience(ws, audience_id)
        subs_json = json.dumps(msgspec.to_builtins(patch.sub_activities), ensure_ascii=False) if patch.sub_activities is not None else subs
        now = self.clock.now()
        try:
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    "UPDATE tasks SET name=?, platform=?, sms_type=?, signature=?, content=?, content_summary=?, audience_id=?,"
                    " audience_name=?, send_type=?, send_at=?, sub_activities=?, status='moderating', status_reason=NULL,"
                    " updated_at=?, moderation_due_at=?, parts=?, encoding=? WHERE id=? AND workspace_id=? AND status=?",
                    (name.strip(), platform, sms_type, signature, json.dumps(data, ensure_ascii=False), summary(data), audience_id,
                     audience_name, new_send_type, new_send_at, subs_json, now, self._moderation_due(platform, ws), seg.parts,
                     seg.encoding, task_id, ws, status),
                )
                if cur.rowcount == 0:
                    raise Conflict("the task changed while it was being edited; try again", code="task_locked")
        except sqlite3.IntegrityError:
            raise Conflict(f"name: a task named {name!r} already exists in this workspace", field="name", code="name_taken") from None
        self.wake()
        return await self.get(ws, task_id)

    async def delete(self, ws: int, task_id: int) -> None:
        row = await self._locked_row(ws, task_id)
        changed = await self.db.execute("DELETE FROM tasks WHERE id=? AND workspace_id=? AND status=?", (task_id, ws, row[0]))
        if not changed:
            raise Conflict("the task changed while it was being deleted; try again", code="task_locked")

    # -- queries --------------------------------------------------------------------------------
    def _row_json(self, r: tuple, detail: bool) -> dict:
        (tid, name, subs, csummary, audience_id, audience_name, audience_size, sent, succeeded, failed, platform,
         sms_type, send_type, send_at, status, status_reason, created_at, content, signature, skipped, segments,
         expire_at, purged, parts, encoding, late, dups, started, completed_at, updated_at) = r
        now = self.clock.now()
        lock = modification_lock(status, send_type, send_at, now)
        out = {
            "id": tid,
            "name": name,
            "sub_activities": json.loads(subs),
            "content_summary": csummary,
            "audience_id": audience_id,
            "audience_name": audience_name,
            "audience_size": audience_size,
            "sent": sent,
            "succeeded": succeeded,
            "failed": failed,
            "pending": sent - succeeded - failed,
            "platform": platform,
            "sms_type": sms_type,
            "send_type": send_type,
            "send_at": to_rfc3339(send_at),
            "status": status,
            "status_reason": status_reason,
            "created_at": to_rfc3339(created_at),
            "can_edit": lock is None,
            "can_delete": lock is None,
            "lock_reason": lock,
        }
        if detail:
            content_data = json.loads(content)
            skipped_counts = {"empty": 0, "invalid": 0, "duplicate": 0, "over_limit": 0, **json.loads(skipped)}
            try:
                text = signed_text(signature, render(content_data))
            except ContentError:
                text = ""
            seg = segment(text)
            out.update(
                content=content_data,
                signature=signature,
                skipped=skipped_counts,
                segments=segments,
                parts_per_message=parts,
                details_expire_at=to_rfc3339(expire_at),
                details_expired=bool(purged),
                late_receipts=late,
                duplicate_receipts=dups,
                started_at=to_rfc3339(started),
                completed_at=to_rfc3339(completed_at),
                preview={"text": text, "encoding": seg.encoding, "parts": seg.parts, "characters": seg.units},
                explanation=_explain(audience_size, sent, skipped_counts, segments, parts, started is not None),
            )
        return out

    async def get(self, ws: int, task_id: int) -> dict:
        row = await self.db.fetchone(f"SELECT {_ROW_COLUMNS} FROM tasks WHERE id=? AND workspace_id=?", (task_id, ws))
        if row is None:
            raise NotFound(f"task {task_id} not found")
        return self._row_json(row, detail=True)

    async def page(self, ws: int, limit: int, cursor: int | None, status: str | None, platform: str | None, q: str | None) -> dict:
        where, args = ["workspace_id=?"], [ws]
        if status:
            statuses = [s.strip() for s in status.split(",") if s.strip()]
            bad = [s for s in statuses if s not in Status._value2member_map_]
            if bad:
                raise Invalid(f"status: unknown status {bad[0]!r}; one of {', '.join(s.value for s in Status)}", field="status")
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if platform:
            where.append("platform=?")
            args.append(platform)
        if q:
            check_text(q, "q")
            where.append("(name LIKE ? ESCAPE '\\' OR content_summary LIKE ? ESCAPE '\\' OR audience_name LIKE ? ESCAPE '\\')")
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pattern, pattern, pattern]
        if cursor is not None:
            where.append("id < ?")
            args.append(cursor)
        rows = await self.db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit + 1)
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [self._row_json(r, detail=False) for r in rows], "next_cursor": paging.encode(rows[-1][0]) if more else None}

    async def _details_available(self, ws: int, task_id: int) -> None:
        row = await self.db.fetchone("SELECT details_purged, details_expire_at FROM tasks WHERE id=? AND workspace_id=?", (task_id, ws))
        if row is None:
            raise NotFound(f"task {task_id} not found")
        if row[0]:
            hours = self.config.retention / 3600
            raise Gone(
                f"per-number details of this task expired at {to_rfc3339(row[1])}: they are kept for {hours:g} hours"
                " after submission, then deleted; the task's counts remain",
                code="details_expired",
            )

    @staticmethod
    def _results(raw: list[str] | None, field: str) -> list[int]:
        codes = []
        for name in raw or []:
            if name not in R.RESULT_CODES:
                raise Invalid(f"{field}: unknown result {name!r}; one of succeeded, failed, pending", field=field)
            codes.append(R.RESULT_CODES[name])
        return codes

    async def messages(self, ws: int, task_id: int, limit: int, cursor: int | None, result: str | None,
                       q: str | None = None) -> dict:
        """A page of per-number rows, and ``total``: how many rows the filter chooses in all.

        The total comes from the task's counters when only results are chosen (they equal the
        rows: ``smslab check`` compares them), so a page of a million-number task costs no
        COUNT; a search (``q``, digits of the number) counts what it matches. Bad input is
        answered before the task's state (a 400 before a 404 or a 410)."""
        codes = self._results(result.split(",") if result else [], "result") or [0, 1, 2]
        digits = _number_search(q)
        await self._details_available(ws, task_id)
        where = f"task_id=?{_results_sql(codes)}"
        args: list[Any] = [task_id]
        if digits:
            where += " AND number LIKE ?"
            args.append(f"%{digits}%")
        rows = await self.db.fetchall(
            f"SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE {where}"
            " AND id > ? ORDER BY id LIMIT ?",
            (*args, cursor if cursor is not None else -1, limit + 1),
        )
        if digits:
            (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM messages WHERE {where}", args)
        else:
            counters = await self.db.fetchone("SELECT sent, succeeded, failed FROM tasks WHERE id=?", (task_id,))
            sent, succeeded, failed = counters
            by_result = {R.PENDING: sent - succeeded - failed, R.SUCCEEDED: succeeded, R.FAILED: failed}
            total = sum(by_result[c] for c in set(codes))
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            {
                "number_masked": N.mask(number),
                "result": R.RESULT_NAMES[res],
                "receipt_at": to_rfc3339(receipt_at),
                "failure_reasons": _reasons_json(reasons),
                "segments": parts,
            }
            for _id, number, res, receipt_at, reasons, parts in rows
        ]
        return {"items": items, "total": total, "next_cursor": paging.encode(rows[-1][0]) if more else None}

    async def generate_audience(self, ws: int, task_id: int, body: GenerateAudience) -> dict:
        from .audiences import get, name_taken

        name = check_name(body.name)
        if not body.results:
            raise Invalid("results: choose at least one of succeeded, failed, pending", field="results")
        codes = self._results(body.results, "results")
        await self._details_available(ws, task_id)
        now = self.clock.now()
        try:
            async with self.db.transaction() as conn:
                audience_id = await self._generated_audience(conn, ws, task_id, name, codes, now)
        except sqlite3.IntegrityError:  # the name is taken: the transaction stored nothing
            raise name_taken(name) from None
        return await get(self.db, ws, audience_id)

    @staticmethod
    async def _generated_audience(conn, ws: int, task_id: int, name: str, codes: list[int], now: float) -> int:
        cur = await conn.execute(
            "INSERT INTO audiences(workspace_id, name, source, source_task_id, created_at) VALUES (?,?,?,?,?)",
            (ws, name, "task", task_id, now),
        )
        audience_id = cur.lastrowid
        cur = await conn.execute(
            "INSERT INTO audience_members(audience_id, seq, raw, e164, kind)"
            " SELECT ?, ROW_NUMBER() OVER (ORDER BY id) - 1, number, number, 0 FROM messages"
            f" WHERE task_id=?{_results_sql(codes)}",
            (audience_id, task_id),
        )
        await conn.execute("UPDATE audiences SET size=?, ready=1 WHERE id=?", (cur.rowcount, audience_id))
        return audience_id


def _reasons_json(stored: str | None) -> list[dict]:
    """Stored reasons are ``[code, text]``, or ``[code, text, part]`` for a receipt naming a part."""
    out = []
    for reason in json.loads(stored) if stored else ():
        item = {"code": reason[0], "message": reason[1]}
        if len(reason) > 2:
            item["part"] = reason[2]
        out.append(item)
    return out


def _number_search(q: str | None) -> str:
    """The digits to look for in numbers: ``q`` may be written with a ``+``, spaces or dashes."""
    if not q:
        return ""
    digits = q.translate(_NUMBER_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()):
        raise Invalid("q: search numbers by their digits, e.g. 8000 or +86 138", field="q")
    return digits


_NUMBER_SEPARATORS = str.maketrans("", "", " +-()")


def _results_sql(codes: list[int]) -> str:
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


def _explain(audience_size: int, sent: int, skipped: dict, segments: int, parts: int, started: bool) -> str:
    if not started:
        return "The task has not started sending yet."
    lines = [f"{audience_size} numbers in the audience, {sent} sent."]
    reasons = {k: v for k, v in skipped.items() if v}
    if reasons:
        words = {"empty": "empty", "invalid": "invalid", "duplicate": "duplicates", "over_limit": "over the platform's recipient limit",
                 "opted_out": "opted out (on the workspace's opt-out list)"}
        lines.append("Not sent: " + ", ".join(f"{v} {words.get(k, k)}" for k, v in sorted(reasons.items())) + ".")
    if parts > 1:
        lines.append(f"The text is {parts} parts long, so the platform bills {segments} messages for {sent} numbers.")
    return " ".join(lines)
