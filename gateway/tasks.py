"""Send tasks: create, edit, delete, list, details, per-number rows, audiences from results.

Validation and rules over the storage's task and audience areas: the web layer turns HTTP into
these calls and renders what they return (``gateway.web.present``). The rules themselves (edit
window, segmentation, results) live in ``gateway.domain``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from . import paging
from .audiences import get as get_audience, name_taken
from .clock import parse_rfc3339, to_rfc3339
from .domain import results as R
from .domain.labels import check_name, check_text
from .domain.content import ContentError, render, summary
from .domain.lifecycle import Status, modification_lock
from .domain.segments import MAX_PARTS, segment, signed_text
from .errors import Conflict, Gone, Invalid, NotFound
from .storage.audiences import AudienceRow
from .storage.errors import NameTaken
from .storage.tasks import EditableTask, TaskFields, TaskRow
# the request bodies are declared with the rest of the API's schemas (re-exported here)
from .web.schemas import Content, GenerateAudience, Id, SubActivity, TaskCreate, TaskPatch, Template  # noqa: F401

SMS_TYPES = ("marketing", "notification", "digital")
SEND_TYPES = ("immediate", "scheduled")


def _task_name_taken(name: str) -> Conflict:
    return Conflict(f"name: a task named {name!r} already exists in this workspace", field="name", code="name_taken")


class TaskService:
    def __init__(self, storage, clock, platforms: dict, config, wake=lambda: None):
        self.tasks = storage.tasks
        self.audiences = storage.audiences
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
        row = await self.audiences.get(ws, audience_id)
        if row is None:
            raise Invalid(f"audience_id: audience {audience_id} not found", field="audience_id")
        return row.name

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
    async def create(self, ws: int, body: TaskCreate) -> TaskRow:
        self._simple(body.name, body.platform, body.sms_type, body.signature, body.sub_activities)
        data, text, seg = self._content(body.content, body.signature)
        send_at = self._send_at(body.send_type, body.send_at)
        audience_name = await self._audience(ws, body.audience_id)
        fields = TaskFields(
            name=body.name.strip(), platform=body.platform, sms_type=body.sms_type, signature=body.signature,
            content=json.dumps(data, ensure_ascii=False), content_summary=summary(data), audience_id=body.audience_id,
            audience_name=audience_name, send_type=body.send_type, send_at=send_at,
            sub_activities=json.dumps(msgspec.to_builtins(body.sub_activities), ensure_ascii=False),
            moderation_due_at=self._moderation_due(body.platform, ws), parts=seg.parts, encoding=seg.encoding,
        )
        try:
            task_id = await self.tasks.create(ws, fields, self.clock.now())
        except NameTaken:
            raise _task_name_taken(body.name) from None
        self.wake()
        return await self.get(ws, task_id)

    async def _locked_row(self, ws: int, task_id: int) -> EditableTask:
        row = await self.tasks.editable(ws, task_id)
        if row is None:
            raise NotFound(f"task {task_id} not found")
        reason = modification_lock(row.status, row.send_type, row.send_at, self.clock.now())
        if reason:
            raise Conflict(f"the task cannot be changed: {reason}", code="task_locked")
        return row

    async def update(self, ws: int, task_id: int, patch: TaskPatch) -> TaskRow:
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
        fields = TaskFields(
            name=name.strip(), platform=platform, sms_type=sms_type, signature=signature,
            content=json.dumps(data, ensure_ascii=False), content_summary=summary(data), audience_id=audience_id,
            audience_name=audience_name, send_type=new_send_type, send_at=new_send_at, sub_activities=subs_json,
            moderation_due_at=self._moderation_due(platform, ws), parts=seg.parts, encoding=seg.encoding,
        )
        try:
            changed = await self.tasks.update(ws, task_id, status, fields, self.clock.now())
        except NameTaken:
            raise _task_name_taken(name) from None
        if not changed:
            raise Conflict("the task changed while it was being edited; try again", code="task_locked")
        self.wake()
        return await self.get(ws, task_id)

    async def delete(self, ws: int, task_id: int) -> None:
        row = await self._locked_row(ws, task_id)
        if not await self.tasks.delete(ws, task_id, row.status):
            raise Conflict("the task changed while it was being deleted; try again", code="task_locked")

    # -- queries --------------------------------------------------------------------------------
    async def get(self, ws: int, task_id: int) -> TaskRow:
        row = await self.tasks.get(ws, task_id)
        if row is None:
            raise NotFound(f"task {task_id} not found")
        return row

    async def page(self, ws: int, limit: int, cursor: int | None, status: str | None, platform: str | None,
                   q: str | None) -> paging.Page:
        statuses: list[str] = []
        if status:
            statuses = [s.strip() for s in status.split(",") if s.strip()]
            bad = [s for s in statuses if s not in Status._value2member_map_]
            if bad:
                raise Invalid(f"status: unknown status {bad[0]!r}; one of {', '.join(s.value for s in Status)}", field="status")
        if q:
            check_text(q, "q")
        rows = await self.tasks.page(ws, limit + 1, cursor, statuses, platform or None, q or None)
        return paging.Page.of(rows, limit)

    async def _details_available(self, ws: int, task_id: int) -> None:
        state = await self.tasks.details(ws, task_id)
        if state is None:
            raise NotFound(f"task {task_id} not found")
        if state.purged:
            hours = self.config.retention / 3600
            raise Gone(
                f"per-number details of this task expired at {to_rfc3339(state.expire_at)}: they are kept for {hours:g} hours"
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
                       q: str | None = None) -> paging.Page:
        """A page of per-number rows, and ``total``: how many rows the filter chooses in all.

        The total comes from the task's counters when only results are chosen (they equal the
        rows: ``smslab check`` compares them), so a page of a million-number task costs no
        COUNT; a search (``q``, digits of the number) counts what it matches. Bad input is
        answered before the task's state (a 400 before a 404 or a 410)."""
        codes = self._results(result.split(",") if result else [], "result") or [0, 1, 2]
        digits = _number_search(q)
        await self._details_available(ws, task_id)
        rows = await self.tasks.messages(task_id, codes, digits, cursor, limit + 1)
        if digits:
            total = await self.tasks.count_messages(task_id, codes, digits)
        else:
            sent, succeeded, failed = await self.tasks.counters(task_id)
            by_result = {R.PENDING: sent - succeeded - failed, R.SUCCEEDED: succeeded, R.FAILED: failed}
            total = sum(by_result[c] for c in set(codes))
        return paging.Page.of(rows, limit, total)

    async def generate_audience(self, ws: int, task_id: int, body: GenerateAudience) -> AudienceRow:
        name = check_name(body.name)
        if not body.results:
            raise Invalid("results: choose at least one of succeeded, failed, pending", field="results")
        codes = self._results(body.results, "results")
        await self._details_available(ws, task_id)
        try:
            audience_id = await self.audiences.from_task_results(ws, task_id, name, codes, self.clock.now())
        except NameTaken:  # the transaction stored nothing
            raise name_taken(name) from None
        return await get_audience(self.audiences, ws, audience_id)


def _number_search(q: str | None) -> str:
    """The digits to look for in numbers: ``q`` may be written with a ``+``, spaces or dashes."""
    if not q:
        return ""
    digits = q.translate(_NUMBER_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()):
        raise Invalid("q: search numbers by their digits, e.g. 8000 or +86 138", field="q")
    return digits


_NUMBER_SEPARATORS = str.maketrans("", "", " +-()")
