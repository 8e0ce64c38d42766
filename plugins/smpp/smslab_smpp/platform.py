"""The ``smpp`` platform: sends a task's numbers to an SMSC over SMPP 3.4 and matches its
receipts, whatever the SMSC's receipt dialect.

Submission: each number's text (signature included) is split as the settings say — UDH, SAR
TLVs or one ``message_payload`` — into exactly the parts smslab bills (``gateway.domain.segments``)
and sent as ``submit_sm`` over the bound sessions, round-robin within each session's window:
a batch's parts wait in one queue, and each answer is handed to a callback that frees its slot
for the next part (a coroutine, a future and a timer per number cost more than the PDUs, at
thousands a second). A text that fits one part is encoded once per task, each number filling in
only its address (``_parts``); receipts are answered with prebuilt octets. A
throttled answer (``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``) pauses every session, longer each time,
and the same part goes again: nothing is lost. A number whose part the SMSC refuses for good is
refused (``skipped.refused``) with the SMPP status as its code; a part never answered within
``timeout`` is refused too, not sent again (it may have arrived: sending again could send twice).

Idempotency and crash semantics: as each number's ``submit_sm_resp``\\ s arrive, its ids are
written to the platform's store (``k:{key}``) within a few milliseconds, and ``submit`` returns
only when they are written; the gateway records the batch after that. After a ``kill -9`` of the
gateway, the batches it had not recorded (``batches_in_flight`` and one being recorded) are
submitted again with the same keys: a number whose ids are in the store is answered from there
and **never sent again**; a number in flight at the kill — sent, its response not yet written —
is **sent again**. At most ``binds × window`` parts are in flight, and at most as many answers
wait to be written (``_pump`` refills no window while they do), so a kill sends at most
``2 × binds × window`` numbers twice; the first copy's receipts then name an id the gateway
does not know, and are kept aside as unmatched. A connection lost mid-request is the
same: the part goes again on the next session.

Receipts: ``deliver_sm`` or ``data_sm`` with the receipt bit, read from the text or the TLVs
(``gateway.wire.smpp.receipts.parse_receipt``), their id matched against the ids the SMSC gave
(``receipt_id``: ``auto`` tries the id as written, in the other base and as a UUID's number, and
takes only a candidate sent to the receipt's own handset, its ``source_addr``). A receipt that
names an id not answered yet (it overtook its ``submit_sm_resp``) waits up to ``hold_receipts``
seconds for it; then it goes to the gateway under its own id (kept aside as unmatched).
Each part's receipt folds into the number's result in the gateway. A receipt for a number whose
batch ``submit`` has not returned waits for it (``_queue_receipt``). Receipts are acknowledged
(``deliver_sm_resp``) only after the gateway committed them; if it could not, they are answered
``ESME_RX_T_APPN`` and the SMSC sends them again.

Mobile-originated messages (``deliver_sm`` without the receipt bit) go to the gateway as inbound
messages of the workspace that last sent to the number through this platform.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections import OrderedDict
from typing import Any

from gateway.platform import InboundMessage, Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult
from gateway.wire.codes import code_of_smpp
from gateway.wire.smpp import pdu as P
from gateway.wire.smpp.receipts import DELIVERED, MESSAGE_STATES, ParsedReceipt, normalise_id, parse_receipt
from gateway.wire.smpp.text import pdu_text, split_for_submit

from .esme import EsmeSession, Waiter, ack_bytes
from .settings import Settings

log = logging.getLogger("smslab.smpp")

THROTTLED = (P.ESME_RTHROTTLED, P.ESME_RMSGQFUL)
RECEIPT_BITS = 0x3C  # esm_class: message type
IDS_KEPT = 2_000_000  # ids remembered in memory for matching receipts (the rest are read from the store)
FLUSH_SECONDS = 0.005
TEMPLATES_KEPT = 256  # texts whose submit_sm template is kept (a task sends one text, or one per number)
_STATE_NAMES = {number: name for name, number in MESSAGE_STATES.items()}


class _Held:
    """A receipt waiting for the submit_sm_resp of its message."""

    __slots__ = ("session", "pdu", "parsed", "handset", "done")

    def __init__(self, session, pdu, parsed, handset: tuple[str, str]):
        self.session, self.pdu, self.parsed, self.handset = session, pdu, parsed, handset
        self.done = False


class _Part(Waiter):
    """One submit_sm, kept encoded: a resend (throttled, or its session lost) sends the same
    octets under a new sequence number, and the answer is matched back to it by the session."""

    __slots__ = ("body", "number", "message_id", "error")

    def __init__(self, body: bytes, number: "_Number"):
        self.body = body  # the submit_sm after its header: sent again as it is, under a new sequence
        self.number = number
        self.message_id: str | None = None
        self.error: str | None = None


class _Number:
    __slots__ = ("item", "batch", "parts", "left")

    def __init__(self, item: SubmitItem, batch: "_Batch"):
        self.item = item
        self.batch = batch
        self.parts: list[_Part] = []
        self.left = 0  # parts neither answered nor refused yet


class _Batch:
    """One call of ``submit``, which returns only when every number's parts are answered and
    written (crash semantics), or fails as a whole (shut down, no session)."""

    __slots__ = ("results", "left", "future", "workspace_id", "over", "receipts")

    def __init__(self, future: asyncio.Future, workspace_id: int | None):
        self.results: dict[str, SubmitResult] = {}
        self.left = 0
        self.future = future
        self.workspace_id = workspace_id
        self.over = False  # cancelled or failed: answers still free the window, but record nothing
        # receipts for its numbers, held until ``submit`` returned (None after): see _queue_receipt
        self.receipts: list | None = []


class SmppPlatform(Platform):
    description = "An SMSC over SMPP 3.4: submit_sm with receipts in any dialect, replies as inbound messages."
    # the next batches' parts join the queue while this one's tail is in the windows: a batch's
    # end would otherwise leave the SMSC idle while the gateway reads the next batch's keys, and
    # so would the wait for the batch before to be recorded (2 took the first away, 4 the second:
    # docs/benchmarks.md, round 4; 8 was no faster than 4)
    batches_in_flight = 4

    def __init__(self, settings: Settings):
        self.settings = settings
        self._unwritten_limit = settings.binds * settings.window
        self.name = settings.name
        self.sessions: list[EsmeSession] = []
        self._bound = asyncio.Event()
        self._ids: OrderedDict[str, tuple[str, int, str, int | None]] = OrderedDict()  # key -> (platform id, part, number, ws)
        self._pending_store: dict[str, Any] = {}
        # numbers answered whose answers are not in the store yet (waiting, or being written): a
        # kill would send them again, so the windows are not refilled while binds × window wait
        self._unwritten = 0
        self._pending_numbers = 0  # of those, the ones still in _pending_store
        self._store_written = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._writer: asyncio.Task | None = None
        self._held: dict[str, list[_Held]] = {}  # receipts waiting for their id, under each candidate
        self._unreturned: dict[str, _Batch] = {}  # platform id -> its batch, while submit has not returned
        self._receipts: list[tuple[EsmeSession, int, int, Receipt]] = []  # (session, command_id, sequence, receipt)
        self._receipt_flush: asyncio.Task | None = None
        self._queue: collections.deque[_Part] = collections.deque()  # parts waiting for a window, in order
        self._templates: dict[str, tuple[bytes, bytes] | bool] = {}
        self._resume: asyncio.TimerHandle | None = None
        self._unbound_timer: asyncio.TimerHandle | None = None
        self._pause_until = 0.0
        self._throttle_delay = 0.05
        self._turn = 0
        self._ref = 0
        self.stats = {"submitted_parts": 0, "throttled": 0, "resent": 0, "refused": 0, "receipts": 0, "unmatched": 0,
                      "held": 0, "inbound": 0}

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        if ctx.store is None:
            raise RuntimeError("the smpp platform needs PlatformContext.store (smslab 0.1 with schema 10)")
        modes = ["trx"] if self.settings.bind == "trx" else ["tx", "rx"]
        for index in range(self.settings.binds):
            for mode in modes:
                session = EsmeSession(self.settings, mode, len(self.sessions), self._on_request, self._on_state,
                                      self._on_answer, self._on_expired, self._on_lost, self._pump, self._on_deliver)
                self.sessions.append(session)
                session.start()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"{self.name}-store")

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sessions), return_exceptions=True)
        for timer in (self._resume, self._unbound_timer):
            if timer is not None:
                timer.cancel()
        for task in (self._writer, self._receipt_flush):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._write_store()

    def _on_state(self) -> None:
        if any(s.can_transmit for s in self.sessions):
            self._bound.set()
            if self._unbound_timer is not None:
                self._unbound_timer.cancel()
                self._unbound_timer = None
            self._pump()
        else:
            self._bound.clear()
            if self._unbound_timer is None:
                self._unbound_timer = asyncio.get_running_loop().call_later(self.settings.connect_wait, self._fail_unbound)

    def for_workspace(self, workspace_id: int) -> "Platform":
        return _WorkspaceView(self, workspace_id)

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="smpp", **self.settings.public(),
                    sessions=[{"mode": s.mode, "state": s.state, "binds": s.binds, "in_flight": len(s.inflight)}
                              for s in self.sessions], counters=dict(self.stats))
        return info

    # -- submission ---------------------------------------------------------------------------------
    async def submit(self, batch: list[SubmitItem], workspace_id: int | None = None) -> list[SubmitResult]:
        if not batch:
            return []
        done = await self.ctx.store.get_many([f"k:{item.key}" for item in batch])
        results: dict[str, SubmitResult] = {}
        todo = []
        for item in batch:
            known = done.get(f"k:{item.key}")
            if known is None:
                todo.append(item)
            elif known[0] is None:
                results[item.key] = SubmitResult(item.key, None, known[1], known[2])
            else:
                results[item.key] = SubmitResult(item.key, known[0])
        if todo:
            await self._wait_bound()
            job = _Batch(asyncio.get_running_loop().create_future(), workspace_id)
            job.results = results
            parts = self._parts(todo, job)
            job.left = len(todo)
            self._queue.extend(parts)
            self._pump()
            try:
                try:
                    await job.future
                except BaseException:
                    # cancelled (shutting down) or failed (no session for connect_wait): its parts not
                    # sent yet stay unsent; the gateway submits the numbers again with the same keys
                    if not job.over:
                        job.over = True
                        self._queue = collections.deque(p for p in self._queue if not p.number.batch.over)
                    raise
                await self._write_store()
            finally:
                self._returned(job)
        return [results[item.key] for item in batch]

    def _returned(self, job: _Batch) -> None:
        """``submit`` is returning (or failing): the receipts held for the batch go to the gateway
        now, when it is about to record the batch (see _queue_receipt)."""
        unreturned = self._unreturned
        for result in job.results.values():
            if unreturned.get(result.platform_id) is job:
                del unreturned[result.platform_id]
        held, job.receipts = job.receipts, None
        if held:
            self._receipts.extend(held)
            self._flush_soon()

    async def _wait_bound(self) -> None:
        if self._bound.is_set():
            return
        try:
            await asyncio.wait_for(self._bound.wait(), self.settings.connect_wait)
        except TimeoutError:
            raise self._unbound_error() from None

    def _unbound_error(self) -> PlatformError:
        return PlatformError(f"no session to the SMSC at {self.settings.host}:{self.settings.port} is bound",
                             retryable=True)

    def _parts(self, items: list[SubmitItem], job: _Batch) -> list[_Part]:
        """Every part of every number, encoded: a text that fits one part is laid out once (a
        template of the submit_sm body with the destination left out), and each number costs
        only its address; a longer text carries a reference of its own per number, so its parts
        go through the codec."""
        s = self.settings
        mask = 0xFFFF if s.udh16 or s.long == "sar" else 0xFF
        templates = self._templates
        parts: list[_Part] = []
        for item in items:
            self._ref = (self._ref + 1) & mask
            number = _Number(item, job)
            template = templates.get(item.text)
            if template is None:
                template = self._template(item.text)
            if template is not False:
                dest = item.number.lstrip("+").encode("latin-1")
                if len(dest) >= 21:
                    raise ValueError("destination_addr is longer than 20 octets")
                part = _Part(template[0] + dest + template[1], number)
                number.parts.append(part)
                number.left = 1
                parts.append(part)
                continue
            for pdu in self._pdus(item):
                part = _Part(P.encode(pdu)[16:], number)
                number.parts.append(part)
                parts.append(part)
            number.left = len(number.parts)
        return parts

    def _template(self, text: str) -> tuple[bytes, bytes] | bool:
        """(the body up to the destination address, the body after it with its NUL) of a text
        that fits one part, from the codec's own encoding of it; False for a longer text."""
        templates = self._templates
        if len(templates) >= TEMPLATES_KEPT:
            templates.clear()
        s = self.settings
        split = split_for_submit(text, s.long, ref=self._ref, udh16=s.udh16)
        if len(split) != 1 or split[0].esm_class & 0x40:
            templates[text] = False
            return False
        part = split[0]
        ton, npi = s.source_ton_npi
        source = s.source.lstrip("+") if ton == 1 else s.source
        pdu = P.make_pdu(P.SUBMIT_SM, source_addr_ton=ton, source_addr_npi=npi, source_addr=source, dest_addr_ton=1,
                         dest_addr_npi=1, destination_addr="", registered_delivery=s.registered_delivery,
                         esm_class=part.esm_class, data_coding=part.data_coding, short_message=part.short_message,
                         **part.tlvs)
        body = P.encode(pdu)[16:]
        head = b"\0" + bytes((ton, npi)) + source.encode("latin-1") + b"\0" + b"\x01\x01"
        assert body.startswith(head + b"\0"), "the submit_sm layout is not the one the template assumes"
        templates[text] = template = (head, body[len(head):])
        return template

    def _pdus(self, item: SubmitItem) -> list[P.Pdu]:
        s = self.settings
        ton, npi = s.source_ton_npi
        common = {"source_addr_ton": ton, "source_addr_npi": npi, "source_addr": s.source.lstrip("+") if ton == 1 else s.source,
                  "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": item.number.lstrip("+"),
                  "registered_delivery": s.registered_delivery}
        pdus = []
        for part in split_for_submit(item.text, s.long, ref=self._ref, udh16=s.udh16):
            pdus.append(P.make_pdu(P.SUBMIT_SM, **common, esm_class=part.esm_class, data_coding=part.data_coding,
                                   short_message=part.short_message, **part.tlvs))
        return pdus

    def _pump(self) -> None:
        """Fill the bound sessions' windows from the queue, round-robin, unless throttled. Called
        whenever room or parts appear (answers, timeouts, a bind, the end of a pause), so the
        windows stay full with nothing waiting per part."""
        queue = self._queue
        if not queue:
            return
        if self._unwritten >= self._unwritten_limit:
            # the crash bound: at most binds × window answers unwritten and as many parts in
            # flight. The store is behind (a slow disk, a busy writer): write now, refill after.
            self._store_written.set()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._pause_until > now:
            if self._resume is None:
                self._resume = loop.call_at(self._pause_until, self._resume_pump)
            return
        sessions = self.sessions
        count = len(sessions)
        for k in range(count):
            session = sessions[(self._turn + k) % count]
            room = session.room
            if room <= 0:
                continue
            send = session.send_submit
            popleft = queue.popleft
            while room and queue:
                part = popleft()
                send(part, part.body, now)
                room -= 1
            if not queue:
                self._turn = (self._turn + k + 1) % count
                return

    def _resume_pump(self) -> None:
        self._resume = None
        self._pump()

    def _on_answer(self, part: _Part, status: int, message_id: str) -> None:
        """A submit_sm_resp (throttling means: the same part again, after a pause)."""
        if status == 0:
            part.message_id = message_id
            self.stats["submitted_parts"] += 1
            if self._throttle_delay > 0.05:
                self._throttle_delay = max(0.05, self._throttle_delay / 2)
        elif status in THROTTLED:
            self.stats["throttled"] += 1
            now = asyncio.get_running_loop().time()
            self._pause_until = max(self._pause_until, now + self._throttle_delay)
            self._throttle_delay = min(self._throttle_delay * 2, 2.0)
            if not part.number.batch.over:
                self._queue.appendleft(part)
            return
        else:
            part.error = f"SMPP:{P.status_name(status)}"
        self._part_done(part)

    def _on_expired(self, part: _Part) -> None:
        """Not answered within ``timeout``: refused, not sent again (it may have arrived)."""
        part.error = "SMPP:NO_RESPONSE"
        self._part_done(part)

    def _part_done(self, part: _Part) -> None:
        number = part.number
        number.left -= 1
        if not number.left:
            self._number_done(number)

    def _on_lost(self, parts: list[_Part]) -> None:
        """The session closed with these in its window: they go again, first, on a session that
        is up (they may have arrived: see the docstring)."""
        self.stats["resent"] += len(parts)
        queue = self._queue
        for part in reversed(parts):
            if not part.number.batch.over:
                queue.appendleft(part)
        self._pump()

    def _number_done(self, number: _Number) -> None:
        # a number and its parts refer to each other: a cycle that reference counting never
        # frees, so every number sent would wait for the collector (whose older generation then
        # walks hundreds of thousands of them). Broken here, they go as soon as they are done.
        parts, number.parts = number.parts, ()
        job = number.batch
        if job.over:
            return
        item = number.item
        workspace_id = job.workspace_id
        error = None
        for part in parts:
            if part.error:
                error = part.error
                break
        if error is not None:
            self.stats["refused"] += 1
            message = f"the SMSC refused the message: {error}"
            self._pending_store[f"k:{item.key}"] = [None, error, message]
            result = SubmitResult(item.key, None, error, message)
        else:
            mode = self.settings.receipt_id
            pending = self._pending_store
            platform_id = normalise_id(parts[0].message_id, mode, from_receipt=False)
            pending[f"k:{item.key}"] = [platform_id, [p.message_id for p in parts], workspace_id]
            single = len(parts) == 1  # the usual case: its id is the number's, normalised once above
            for index, part in enumerate(parts):
                norm = platform_id if single else normalise_id(part.message_id, mode, from_receipt=False)
                value = (platform_id, -1 if single else index, item.number, workspace_id)
                self._remember(norm, value)
                pending[f"m:{norm}"] = list(value)
                if self._held:
                    self._release_held(norm)
            if workspace_id is not None:
                pending[f"n:{item.number}"] = workspace_id
            self._unreturned[platform_id] = job
            result = SubmitResult(item.key, platform_id)
        job.results[item.key] = result
        self._kick_writer()
        job.left -= 1
        if not job.left:
            job.over = True
            if not job.future.done():
                job.future.set_result(None)

    def _fail_unbound(self) -> None:
        """No session has been bound for ``connect_wait``: the batches waiting for one fail,
        retryable, as a batch submitted with no session bound does."""
        self._unbound_timer = None
        if self._bound.is_set():
            return
        error = self._unbound_error()
        for part in self._queue:
            job = part.number.batch
            if not job.over:
                job.over = True
                if not job.future.done():
                    job.future.set_exception(error)
        self._queue.clear()

    # -- the store ----------------------------------------------------------------------------------
    def _kick_writer(self) -> None:
        self._unwritten += 1
        self._pending_numbers += 1
        if len(self._pending_store) >= self._unwritten_limit:  # keys: a write well before the pump must wait
            self._store_written.set()

    async def _write_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._store_written.wait()
            except TimeoutError:
                pass
            self._store_written.clear()
            try:
                await self._write_store()
            except Exception:
                log.exception("%s: writing submitted ids failed; retrying", self.name)

    async def _write_store(self) -> None:
        """Write what waits. One write at a time: ``submit`` returns only once its answers are
        written, and a write already under way (the write loop's) may hold some of them, so it
        waits for that one before writing what is left."""
        async with self._store_lock:
            if not self._pending_store:
                return
            pending, self._pending_store = self._pending_store, {}
            numbers, self._pending_numbers = self._pending_numbers, 0
            try:
                await self.ctx.store.put_many(pending)
            except BaseException:
                pending.update(self._pending_store)
                self._pending_store = pending
                self._pending_numbers += numbers
                raise
            self._unwritten -= numbers
            if self._queue:
                self._pump()

    def _remember(self, norm: str, value: tuple) -> None:
        self._ids[norm] = value
        if len(self._ids) > IDS_KEPT:
            self._ids.popitem(last=False)

    # -- what the SMSC sends ------------------------------------------------------------------------
    def _on_request(self, session: EsmeSession, pdu: P.Pdu) -> None:
        if pdu.fields.get("esm_class", 0) & RECEIPT_BITS:
            self._on_receipt(session, pdu)
        else:
            asyncio.get_running_loop().create_task(self._on_mo(session, pdu))

    def _on_deliver(self, session: EsmeSession, frame: bytes, sequence: int) -> bool:
        """A deliver_sm as it came: a receipt that says DELIVERED in its TLVs, for an id known
        here, is taken without decoding it into a Pdu (True); anything else goes the long way."""
        quick = delivered_receipt(frame)
        if quick is None:
            return False
        source, destination, receipted = quick
        parsed = ParsedReceipt(id=receipted.strip(), outcome="delivered", state=DELIVERED)
        match = self._match(parsed.id, (source, destination))
        if match is None:
            return False  # in the store, or not answered yet: _on_receipt decodes it and sees to that
        self._queue_receipt(session, P.DELIVER_SM, sequence, parsed, match)
        return True

    def _on_receipt(self, session: EsmeSession, pdu: P.Pdu) -> None:
        parsed = read_receipt(pdu)
        if parsed is None:
            log.warning("%s: a receipt without an id: %r", self.name, pdu.fields.get("short_message"))
            session.send_bytes(ack_bytes(pdu.command_id, 0, pdu.sequence_number))
            return
        if parsed.outcome == "pending":  # ENROUTE, ACCEPTED: not final; nothing to record
            session.send_bytes(ack_bytes(pdu.command_id, 0, pdu.sequence_number))
            return
        # the handset: source_addr per SMPP 3.4; some SMSCs swap the addresses of a receipt
        handset = (pdu.fields.get("source_addr", ""), pdu.fields.get("destination_addr", ""))
        match = self._match(parsed.id, handset)
        if match is None:
            asyncio.get_running_loop().create_task(self._resolve(session, pdu, parsed, handset))
            return
        self._queue_receipt(session, pdu.command_id, pdu.sequence_number, parsed, match)

    async def _resolve(self, session: EsmeSession, pdu: P.Pdu, parsed, handset: tuple[str, str]) -> None:
        """An id not in memory: read it from the store (a receipt for a message sent before a
        restart), else hold it for its submit_sm_resp."""
        candidates = self._candidates(parsed.id)
        found = await self.ctx.store.get_many([f"m:{c}" for c in candidates])
        for key, value in found.items():
            self._remember(key[2:], tuple(value))
        match = self._match(parsed.id, handset)
        if match is not None:
            self._queue_receipt(session, pdu.command_id, pdu.sequence_number, parsed, match)
            return
        self.stats["held"] += 1
        held = _Held(session, pdu, parsed, handset)
        for candidate in candidates:
            self._held.setdefault(candidate, []).append(held)
        asyncio.get_running_loop().call_later(self.settings.hold_receipts, self._give_up, held)

    def _release_held(self, norm: str) -> None:
        """A submit_sm_resp named ``norm``: the receipts waiting for it (or for another
        candidate of their id that turns out to be it) go now."""
        for held in self._held.pop(norm, ()):
            if held.done:
                continue
            match = self._match(held.parsed.id, held.handset)
            if match is not None:
                held.done = True
                self._queue_receipt(held.session, held.pdu.command_id, held.pdu.sequence_number, held.parsed, match)

    def _give_up(self, held: "_Held") -> None:
        """No submit_sm_resp named the receipt's message in time: it goes to the gateway under its
        own id, which keeps it aside as unmatched (a copy sent before a crash, whose response was
        never written, or an SMSC's mistake). It is not given to another number's message that
        holds another reading of its id: that would count a receipt twice, or for the wrong number."""
        for candidate in self._candidates(held.parsed.id):
            waiting = self._held.get(candidate)
            if waiting and held in waiting:
                waiting.remove(held)
                if not waiting:
                    del self._held[candidate]
        if held.done:
            return
        held.done = True
        match = self._match(held.parsed.id, held.handset)
        if match is None:
            self.stats["unmatched"] += 1
            match = (normalise_id(held.parsed.id, "auto"), -1, "", None)
        self._queue_receipt(held.session, held.pdu.command_id, held.pdu.sequence_number, held.parsed, match)

    def _candidates(self, receipt_id: str) -> list[str]:
        """The keys a receipt id may have been stored under, in the order to try them."""
        mode = self.settings.receipt_id
        if mode != "auto":
            return [normalise_id(receipt_id, mode)]
        raw = receipt_id.strip().strip("\0").strip()
        out = [normalise_id(raw, "auto")]
        if raw.isdigit() and raw:
            value = int(raw)
            out.append(format(value, "x"))  # decimal in the receipt, hex in the response
            if value < 1 << 128:
                out.append(str(uuid.UUID(int=value)))  # a UUID's number
        try:
            out.append(str(int(raw, 16)))  # hex in the receipt, decimal in the response
        except ValueError:
            pass
        return list(dict.fromkeys(c for c in out if c))

    def _match(self, receipt_id: str, handset: tuple[str, str]) -> tuple | None:
        """The message a receipt id names. ``auto`` gives several candidates (``19`` may be
        decimal 19 or hex 0x19): only one sent to the receipt's own handset is taken, since a
        receipt that overtook its submit_sm_resp would otherwise land on whichever message holds
        another reading of its id. A receipt that names no handset at all takes the first
        candidate known."""
        if self.settings.receipt_id == "auto":
            # the id as written comes first among the candidates: when it is known (the usual
            # case) and names this handset, the other readings need not be computed
            first = self._ids.get(normalise_id(receipt_id, "auto"))
            if first is not None:
                source, destination = handset
                if (not source and not destination) or (source and _same_handset(first[2], source)) \
                        or (destination and _same_handset(first[2], destination)):
                    return first
        found = [self._ids[c] for c in self._candidates(receipt_id) if c in self._ids]
        if not found:
            return None
        if any(handset):
            return next((f for f in found if any(_same_handset(f[2], a) for a in handset if a)), None)
        return found[0]

    def _queue_receipt(self, session: EsmeSession, command_id: int, sequence: int, parsed, match: tuple) -> None:
        platform_id, part, _number, _ws = match
        state_name = _STATE_NAMES.get(parsed.state or 0, "UNKNOWN")
        delivered = parsed.outcome == "delivered"
        err = parsed.network_error if parsed.network_error is not None else _int(parsed.err)
        code = "DELIVERED" if delivered else code_of_smpp(state_name, err)
        receipt = Receipt(platform_id, "delivered" if delivered else "failed", self.ctx.clock.now(),
                          None if part < 0 else part, code, None if delivered else f"{parsed.stat or state_name} err:{parsed.err}")
        self.stats["receipts"] += 1
        # A receipt for a number whose batch ``submit`` has not returned yet waits for it: the
        # gateway records a batch only after that, and a receipt it gets before would find no
        # message, be kept aside as unmatched, and be taken back and applied again when the
        # batch is recorded (a quarter of all receipts at the bench's rate, each costing three
        # more statements). Handed over as ``submit`` returns, it waits for the record in the
        # gateway's memory instead. Its deliver_sm is answered later by as much.
        job = self._unreturned.get(platform_id) if self._unreturned else None
        if job is not None and job.receipts is not None:
            job.receipts.append((session, command_id, sequence, receipt))
            return
        self._receipts.append((session, command_id, sequence, receipt))
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._receipt_flush is None or self._receipt_flush.done():
            self._receipt_flush = asyncio.get_running_loop().create_task(self._flush_receipts())

    async def _flush_receipts(self) -> None:
        """Hand receipts to the gateway in batches; answer each only after its batch committed."""
        await asyncio.sleep(0)
        while self._receipts:
            batch, self._receipts = self._receipts, []
            try:
                await self.ctx.deliver_receipts(self.name, [r for _, _, _, r in batch])
                status = P.ESME_ROK
            except Exception:
                log.exception("%s: the gateway could not take %d receipts; the SMSC will send them again", self.name, len(batch))
                status = P.ESME_RX_T_APPN
            for session, command_id, sequence, _ in batch:
                session.send_bytes(ack_bytes(command_id, status, sequence))

    async def _on_mo(self, session: EsmeSession, pdu: P.Pdu) -> None:
        fields = pdu.fields
        sender = "+" + fields.get("source_addr", "").lstrip("+")
        message = InboundMessage(sender, fields.get("destination_addr", ""), pdu_text(pdu), self.ctx.clock.now(),
                                 pdu.tlvs.get("receipted_message_id"))
        workspace = self.settings.workspace
        if workspace is None:
            workspace = (await self.ctx.store.get_many([f"n:{sender}"])).get(f"n:{sender}")
        try:
            if self.ctx.deliver_inbound is not None:
                await self.ctx.deliver_inbound(self.name, [message], workspace)
            self.stats["inbound"] += 1
            session.send_bytes(ack_bytes(pdu.command_id, 0, pdu.sequence_number))
        except Exception:
            log.exception("%s: the gateway could not take a reply; the SMSC will send it again", self.name)
            session.send(P.make_resp(pdu, P.ESME_RX_T_APPN))


class _WorkspaceView(Platform):
    """The platform for one workspace's task: the same sessions, and the workspace remembered with
    each number, so that a reply is filed under the workspace that sent to it."""

    def __init__(self, platform: SmppPlatform, workspace_id: int):
        self.platform = platform
        self.workspace_id = workspace_id
        self.name = platform.name
        self.description = platform.description
        self.batches_in_flight = platform.batches_in_flight

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        return await self.platform.submit(batch, self.workspace_id)

    def describe(self) -> dict:
        return self.platform.describe()

    def for_workspace(self, workspace_id: int) -> Platform:
        return self.platform.for_workspace(workspace_id)


def read_receipt(pdu: P.Pdu) -> ParsedReceipt | None:
    """What this platform takes from a receipt: ``parse_receipt`` without the dates, and without
    reading the text at all when the TLVs name the id and say DELIVERED (``parse_receipt``
    prefers the TLVs where both speak, and of a delivered receipt nothing else is used): most
    receipts are that, and the text is a third of the cost of taking one."""
    tlvs = pdu.tlvs
    receipted = tlvs.get("receipted_message_id")
    if receipted and tlvs.get("message_state") == DELIVERED:
        return ParsedReceipt(id=receipted.strip(), outcome="delivered", state=DELIVERED)
    return parse_receipt(pdu.fields.get("short_message", b""), tlvs, dates=False)


def delivered_receipt(frame: bytes) -> tuple[str, str, str] | None:
    """(source_addr, destination_addr, receipted_message_id) of a ``deliver_sm`` frame that is a
    receipt whose TLVs name its id and say DELIVERED, read as ``P.decode`` reads them (the same
    checks, the TLVs by the codec itself); None for any other frame, and for any frame the codec
    would refuse, which then takes the codec's way. Decoding all 17 fields into a Pdu was the
    largest cost of a receipt, and of these only the addresses are used."""
    size = len(frame)
    if size <= 16:
        return None
    text = frame.decode("latin-1")
    find = text.find
    nul = find("\0", 16)  # service_type
    if nul < 0 or nul - 16 >= 6:
        return None
    pos = nul + 3  # its NUL, source_addr_ton, source_addr_npi
    nul = find("\0", pos)
    if nul < 0 or nul - pos >= 21:
        return None
    source = text[pos:nul]
    pos = nul + 3
    nul = find("\0", pos)
    if nul < 0 or nul - pos >= 21:
        return None
    destination = text[pos:nul]
    pos = nul + 1
    if pos + 3 > size or not frame[pos] & RECEIPT_BITS:  # esm_class, protocol_id, priority_flag
        return None
    pos += 3
    for _ in range(2):  # schedule_delivery_time, validity_period
        nul = find("\0", pos)
        if nul < 0 or nul - pos >= 17:
            return None
        pos = nul + 1
    pos += 4  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
    if pos >= size:
        return None
    end = pos + 1 + frame[pos]  # sm_length, short_message
    if end - pos > 255 or end >= size:  # no TLVs after it: not this kind of receipt
        return None
    try:
        tlvs = P._decode_tlvs(frame, end)
    except Exception:  # the codec's error: P.decode raises it again, on the way that handles it
        return None
    receipted = tlvs.get("receipted_message_id")
    if not receipted or tlvs.get("message_state") != DELIVERED:
        return None
    return source, destination, receipted


def _same_handset(number: str, source_addr: str) -> bool:
    """The receipt's source_addr names the number sent to: equal digits, or one the other's
    tail (an SMSC that drops the country code, or writes a national prefix)."""
    a = number.lstrip("+")
    b = source_addr.lstrip("+")
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 7 and long_.endswith(short.lstrip("0"))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
