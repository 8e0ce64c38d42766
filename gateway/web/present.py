"""The API's JSON for what the services return: tasks, audiences, per-number rows, receipts kept
aside. The services answer records (``gateway.storage``'s rows, ``paging.Page``); how they look
on the wire is decided here alone, so the OpenAPI schemas (``schemas.py``) have one place to match."""

from __future__ import annotations

import json
from typing import Any

from gateway.clock import to_rfc3339
from gateway.domain import numbers as N
from gateway.domain import results as R
from gateway.domain.content import ContentError, render
from gateway.domain.lifecycle import modification_lock
from gateway.domain.segments import segment, signed_text
from gateway.paging import Page
from gateway.storage.audiences import AudienceRow
from gateway.storage.tasks import MessageRow, TaskRow


def audience_json(row: AudienceRow) -> dict[str, Any]:
    out = {"id": row.id, "name": row.name, "size": row.size, "source": row.source, "created_at": to_rfc3339(row.created_at)}
    if row.source_task_id is not None:
        out["source_task_id"] = row.source_task_id
    return out


def audience_page(page: Page) -> dict[str, Any]:
    return {"items": [audience_json(r) for r in page.items], "next_cursor": page.next_cursor}


def task_json(r: TaskRow, now: float, detail: bool = True) -> dict[str, Any]:
    """A task as listed, or with ``detail`` as ``GET /tasks/{id}`` shows it; ``can_edit`` and the
    lock reason are those at ``now``."""
    lock = modification_lock(r.status, r.send_type, r.send_at, now)
    out = {
        "id": r.id,
        "name": r.name,
        "sub_activities": json.loads(r.sub_activities),
        "content_summary": r.content_summary,
        "audience_id": r.audience_id,
        "audience_name": r.audience_name,
        "audience_size": r.audience_size,
        "sent": r.sent,
        "succeeded": r.succeeded,
        "failed": r.failed,
        "pending": r.sent - r.succeeded - r.failed,
        "platform": r.platform,
        "sms_type": r.sms_type,
        "send_type": r.send_type,
        "send_at": to_rfc3339(r.send_at),
        "status": r.status,
        "status_reason": r.status_reason,
        "created_at": to_rfc3339(r.created_at),
        "can_edit": lock is None,
        "can_delete": lock is None,
        "lock_reason": lock,
    }
    if detail:
        content_data = json.loads(r.content)
        skipped_counts = {"empty": 0, "invalid": 0, "duplicate": 0, "over_limit": 0, **json.loads(r.skipped)}
        try:
            text = signed_text(r.signature, render(content_data))
        except ContentError:
            text = ""
        seg = segment(text)
        started = r.dispatch_started_at
        out.update(
            content=content_data,
            signature=r.signature,
            skipped=skipped_counts,
            segments=r.segments,
            parts_per_message=r.parts,
            details_expire_at=to_rfc3339(r.details_expire_at),
            details_expired=bool(r.details_purged),
            late_receipts=r.late_receipts,
            duplicate_receipts=r.duplicate_receipts,
            started_at=to_rfc3339(started),
            completed_at=to_rfc3339(r.completed_at),
            preview={"text": text, "encoding": seg.encoding, "parts": seg.parts, "characters": seg.units},
            explanation=explain(r.audience_size, r.sent, skipped_counts, r.segments, r.parts, started is not None),
        )
    return out


def task_page(page: Page, now: float) -> dict[str, Any]:
    return {"items": [task_json(r, now, detail=False) for r in page.items], "next_cursor": page.next_cursor}


def message_json(m: MessageRow) -> dict[str, Any]:
    return {
        "number_masked": N.mask(m.number),
        "result": R.RESULT_NAMES[m.result],
        "receipt_at": to_rfc3339(m.receipt_at),
        "failure_reasons": reasons_json(m.reasons),
        "segments": m.parts,
    }


def message_page(page: Page) -> dict[str, Any]:
    return {"items": [message_json(m) for m in page.items], "total": page.total, "next_cursor": page.next_cursor}


def unmatched_page(page: Page) -> dict[str, Any]:
    items = [
        {"platform": r.platform, "platform_id": r.platform_id, "part": r.part, "status": r.status, "code": r.code,
         "message": r.message, "at": to_rfc3339(r.at), "received_at": to_rfc3339(r.received_at)}
        for r in page.items
    ]
    return {"items": items, "total": page.total, "next_cursor": page.next_cursor}


def reasons_json(stored: str | None) -> list[dict]:
    """Stored reasons are ``[code, text]``, or ``[code, text, part]`` for a receipt naming a part."""
    out = []
    for reason in json.loads(stored) if stored else ():
        item = {"code": reason[0], "message": reason[1]}
        if len(reason) > 2:
            item["part"] = reason[2]
        out.append(item)
    return out


def explain(audience_size: int, sent: int, skipped: dict, segments: int, parts: int, started: bool) -> str:
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
