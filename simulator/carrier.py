"""The simulated carrier as an in-process platform named ``sim``.

It keeps its own state in the gateway's database (tables ``sim_*``): every message it accepted,
what it decided, and every receipt it planned with the service-clock time it is due. Receipts
are emitted by ``on_clock`` in due order and handed to the gateway's receipt sink; the carrier
records how far it has emitted only after the sink committed them, so a crash re-emits at most
a few receipts, which the sink recognises as duplicates. Because its state is on disk, a
restarted gateway finds the carrier exactly where it was: the "operator" keeps working.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from gateway.platform import Platform, PlatformContext, Receipt, SubmitItem, SubmitResult

from . import profile as profiles
from .model import decide

ERROR_TEXT = {
    "DELIVERED": "delivered",
    "UNDELIV": "the message could not be delivered",
    "EXPIRED": "the message expired before it could be delivered",
    "REJECTD": "the message was rejected by the operator",
    "MK:0005": "the number is out of service or blacklisted by the operator",
    "MK:0001": "the handset is switched off",
    "IB:0008": "the number is in the operator's blacklist",
}

EMIT_BATCH = 5000


def error_text(code: str | None) -> str | None:
    if code is None:
        return None
    return ERROR_TEXT.get(code, f"carrier error {code}")


class PushedReceipt(msgspec.Struct, forbid_unknown_fields=True):
    platform_id: str
    status: str
    at: str | float | None = None
    part: int | None = None
    code: str | None = None
    message: str | None = None


class PushedReceipts(msgspec.Struct, forbid_unknown_fields=True):
    receipts: list[PushedReceipt]


_pushed_decoder = msgspec.json.Decoder(PushedReceipts)


class SimulatedCarrier(Platform):
    name = "sim"
    # receipts pushed to /api/v1/platforms/sim/receipts (QA injecting receipts by hand, load
    # tests) carry the caller's bearer token instead of a signature
    webhook_requires_token = True
    description = "The simulated carrier: seeded, reproducible delays, failures, duplicates and missing receipts."

    def __init__(self, profile: profiles.Profile | None = None):
        self.profile = profile or profiles.Profile()
        self.profile_version = 0
        self._emit_lock = asyncio.Lock()
        self._watermark: tuple[float, int] = (float("-inf"), 0)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        db = ctx.database
        initial = ctx.extras.get("sim_profile")
        stored = await db.fetchone("SELECT value FROM sim_state WHERE key='profile'")
        if initial is not None:
            await self.set_profile(initial)
        elif stored is not None:
            self.profile = profiles.from_json(stored[0].encode())
        mark = await db.fetchone("SELECT value FROM sim_state WHERE key='emitted_until'")
        if mark is not None:
            due, rid = msgspec.json.decode(mark[0])
            self._watermark = (float(due), int(rid))

    async def set_profile(self, profile: profiles.Profile) -> None:
        """Applies to messages submitted from now on; planned receipts keep their plan."""
        self.profile = profile
        self.profile_version += 1
        await self.ctx.database.execute(
            "INSERT OR REPLACE INTO sim_state(key, value) VALUES ('profile', ?)",
            (msgspec.json.encode(profile).decode(),),
        )

    # -- the platform contract ---------------------------------------------------------------
    def max_recipients(self) -> int | None:
        return self.profile.max_recipients

    def moderation_delay(self) -> float:
        return self.profile.moderation.review_seconds

    async def moderate(self, text: str, task: dict) -> list[str]:
        lowered = text.lower()
        return [f"the content contains the banned word \"{w}\"" for w in self.profile.moderation.banned_words if w.lower() in lowered]

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="in-process", part_policy=self.profile.part_policy, throughput_limit=self.profile.throughput_limit)
        return info

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        profile = self.profile
        db = self.ctx.database
        async with db.transaction() as conn:
            now = self.ctx.clock.now()
            ids = [f"sim-{item.key}" for item in batch]
            known: set[str] = set()
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                rows = await db.all(conn, f"SELECT msg_id FROM sim_messages WHERE msg_id IN ({','.join('?' * len(chunk))})", chunk)
                known.update(r[0] for r in rows)
            message_rows = []
            receipt_rows = []
            for item, msg_id in zip(batch, ids):
                if msg_id in known:  # an idempotent resubmission: the handset got it already
                    continue
                task_ref = str(item.task_id)
                decision = decide(profile, f"{item.task_id}:{item.number}", item.parts)
                message_rows.append((msg_id, task_ref, item.number, item.parts, now, decision.outcome, decision.code))
                for r in decision.receipts:
                    receipt_rows.append((msg_id, r.part, r.status, r.code, now + r.delay, int(r.duplicate), task_ref))
            await conn.executemany(
                "INSERT INTO sim_messages(msg_id, task_ref, number, parts, submitted_at, outcome, code) VALUES (?,?,?,?,?,?,?)",
                message_rows,
            )
            await conn.executemany(
                "INSERT INTO sim_receipts(msg_id, part, status, code, due_at, duplicate, task_ref) VALUES (?,?,?,?,?,?,?)",
                receipt_rows,
            )
        return [SubmitResult(item.key, msg_id) for item, msg_id in zip(batch, ids)]

    async def on_clock(self, now: float) -> None:
        """Emit every receipt due by ``now``, oldest first, in batches, each committed by the
        gateway before the next is read."""
        async with self._emit_lock:
            while True:
                due, rid = self._watermark
                # Read under the write lock: a submission still in its transaction could otherwise
                # commit receipts due before the watermark this read moves past.
                db = self.ctx.database
                async with db.transaction() as conn:
                    rows = await db.all(
                        conn,
                        "SELECT id, msg_id, part, status, code, due_at FROM sim_receipts"
                        " WHERE (due_at > ? OR (due_at = ? AND id > ?)) AND due_at <= ? ORDER BY due_at, id LIMIT ?",
                        (due, due, rid, now, EMIT_BATCH),
                    )
                if not rows:
                    return
                receipts = [
                    Receipt(platform_id=r[1], status=r[3], at=r[5], part=r[2], code=r[4], message=error_text(r[4]))
                    for r in rows
                ]
                await self.ctx.deliver_receipts(self.name, receipts)
                last = rows[-1]
                self._watermark = (last[5], last[0])
                await self.ctx.database.execute(
                    "INSERT OR REPLACE INTO sim_state(key, value) VALUES ('emitted_until', ?)",
                    (msgspec.json.encode([last[5], last[0]]).decode(),),
                )
                if len(rows) < EMIT_BATCH:
                    return

    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        from gateway.clock import parse_rfc3339
        from gateway.platform import WebhookRejected

        try:
            pushed = _pushed_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise WebhookRejected(f"body: {exc}", status=400) from None
        out = []
        for i, r in enumerate(pushed.receipts):
            if r.status not in ("delivered", "failed"):
                raise WebhookRejected(f"receipts[{i}].status: delivered or failed", status=400)
            if r.at is None:
                at = now
            elif isinstance(r.at, str):
                try:
                    at = parse_rfc3339(r.at)
                except ValueError:
                    raise WebhookRejected(f"receipts[{i}].at: not an RFC 3339 time", status=400) from None
            else:
                at = float(r.at)
            code = r.code or ("DELIVERED" if r.status == "delivered" else "UNDELIV")
            out.append(Receipt(platform_id=r.platform_id, status=r.status, at=at, part=r.part, code=code,
                               message=r.message or error_text(code)))
        return out

    # -- ground truth ----------------------------------------------------------------------------
    async def ground_truth(self, task_id: int, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        db = self.ctx.database
        rows = await db.fetchall(
            "SELECT msg_id, number, parts, submitted_at, outcome, code FROM sim_messages"
            " WHERE task_ref = ? AND msg_id > ? ORDER BY msg_id LIMIT ?",
            (str(task_id), after or "", limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            return [], None
        receipts = await db.fetchall(
            "SELECT msg_id, part, status, code, due_at, duplicate FROM sim_receipts"
            " WHERE task_ref = ? AND msg_id >= ? AND msg_id <= ? ORDER BY msg_id, due_at, id",
            (str(task_id), rows[0][0], rows[-1][0]),
        )
        by_msg: dict[str, list[dict]] = {}
        for msg_id, part, status, code, due_at, dup in receipts:
            by_msg.setdefault(msg_id, []).append(
                {"part": part, "status": status, "code": code, "due_at": due_at, "duplicate": bool(dup)}
            )
        items = [
            {
                "platform_id": msg_id,
                "number": number,
                "parts": parts,
                "submitted_at": submitted_at,
                "outcome": outcome,
                "code": code,
                "receipts": by_msg.get(msg_id, []),
            }
            for msg_id, number, parts, submitted_at, outcome, code in rows
        ]
        return items, (rows[-1][0] if more else None)
