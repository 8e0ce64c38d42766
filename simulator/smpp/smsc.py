"""The simulated carrier as an SMPP 3.4 SMSC (``smslab carrier --smpp-port``): a front end of the
carrier core that speaks to gateways the way operators and aggregators do.

What a gateway sees:
- binds checked against the carrier's accounts (``ESME_RINVSYSID``, ``ESME_RINVPASWD``,
  ``ESME_RBINDFAIL`` past ``max_binds``, ``ESME_RALYBND``); a request before a bind is answered
  ``ESME_RINVBNDSTS``; an unknown command ``generic_nack ESME_RINVCMDID``, and the session goes on;
- ``submit_sm``, ``submit_multi`` and ``data_sm`` decided by the core (the profile, magic numbers,
  outages as ``ESME_RSYSERR``, the account's or profile's throughput as ``ESME_RTHROTTLED``), each
  answered with its message id once the message is on disk (group commit across binds), in the
  account's dialect; a concatenated message (UDH with 8- or 16-bit references, or SAR TLVs) is
  one message of N parts to the core and each part gets its own id; ``query_sm``,
  ``cancel_sm`` and ``replace_sm`` on the messages it holds;
- receipts as ``deliver_sm`` (or ``data_sm``) in the account's dialect, per the message's
  ``registered_delivery``, round-robin over the account's receiver and transceiver binds within
  each bind's window, waiting for a receiver to bind when none is, sent again until acknowledged
  when the dialect says so; some before their ``submit_sm_resp`` when the dialect says so;
- mobile-originated messages (``POST /mo``) as ``deliver_sm`` with ``esm_class`` 0;
- session chaos from the profile's ``session`` (dropped connections, unanswered requests, slow
  answers, enquire_link the client must answer).

Decisions are keyed ``{system_id}:{destination}:{n}``, ``n`` the count of the account's earlier
messages to that destination, so batching, binds and concurrency do not change them.

Message ids: the SMSC numbers messages 1, 2, 3... (a message of N parts takes N numbers); the
account's dialect writes a number as the gateway sees it (decimal, hex, zero-padded, a UUID).
Inside, a message is ``{first number:012d}@{system_id}``, its per-message data (source address,
``registered_delivery``, the text's first 20 characters: ``Meta``) kept with it in its batch; a
cancel or replace records the changed data in the carrier's state.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import msgspec

from gateway.platform import SubmitItem
from gateway.storage.sqlite import bulk
from gateway.wire.codes import smpp_state
from gateway.wire.smpp import pdu as P
from gateway.wire.smpp.receipts import ReceiptWriter, format_message_id, normalise_id
# the receipt's ``text:`` goes in the receipt's own coding (GSM 03.38), a character it cannot carry
# (the Chinese of a UCS-2 message) as ``?``, so no client's decoder meets UCS-2 octets in it
from gateway.wire.smpp.text import (ESM_UDHI, GSM7, choose_coding, concat_info, decode_text, encode_text,
                                    gsm_or_question_marks, split_udh)

from ..core import books_sqlite as books
from ..core.outbox import RECEIPT, OutItem, keep_delivering
from ..model import draw
from ..profile import outage_time
from .session import BIND_MODES, Session

log = logging.getLogger("smslab.smsc")

SMSC_ID = "smslab"
COMMIT_MAX = 2000  # submissions in one transaction
META_KEPT = 500_000  # messages whose addresses stay in memory for their receipts
EARLY_HOLD = 5.0  # real seconds a submit_sm_resp may wait for its receipt (receipt_before_resp)
RETRY_REFUSED = 5.0  # service seconds before a receipt the client refused (non-zero resp) goes again
CONCAT_KEPT = 10_000  # concatenated messages whose parts are still expected

# a refused decision's code → the status the submit_sm_resp carries
REFUSAL_STATUS = {"21211": P.ESME_RINVDSTADR, "21614": P.ESME_RINVDSTADR, "ESME_RINVDSTADR": P.ESME_RINVDSTADR}

class Meta(msgspec.Struct, array_like=True, gc=False):
    """What a message's receipts need that the core does not keep."""

    n: int  # its first message number
    parts: int
    destination: str  # the handset, E.164
    source: str
    source_ton: int
    source_npi: int
    registered_delivery: int
    text: str  # the first 20 characters of its text (the receipt's ``text:`` field)
    submitted_at: float
    canceled_at: float | None = None


_decode_metas = msgspec.json.Decoder(list[tuple[str, Meta]]).decode


class Pending(msgspec.Struct, gc=False):
    """A submission waiting for its group commit."""

    session: Session
    request: P.Pdu
    tenant: Any
    item: SubmitItem
    msg_id: str
    key: str
    meta: Meta
    number: int  # the message number this PDU's response names
    early: bool
    respond_after: float = 0.0
    receipt_parts: int = 0  # the parts its receipts are decided for (0: all of them)


class Smsc:
    protocol = "smpp"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, tls_port: int | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None):
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.tls_cert_path = None
        self.carrier = None
        self.sessions: dict[int, Session] = {}
        self.by_account: dict[str, list[Session]] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._next_bind = 1
        self._next_number = 1
        self._counts: dict[tuple[str, str], int] = {}  # (account, destination) -> messages so far
        self._requests: dict[str, int] = {}  # per account: requests seen (for seeded chaos draws)
        self._metas: OrderedDict[str, Meta] = OrderedDict()
        self._pending: list[Pending] = []
        self._committing: asyncio.Task | None = None
        self._concat: OrderedDict[tuple, tuple[str, int, int]] = OrderedDict()  # (account, src, dst, ref, total) -> (msg id, n, parts)
        self._held_resps: dict[str, list[tuple[Session, P.Pdu, float]]] = {}
        self._verified: dict[str, set[str]] = {}  # account -> sha256 of passwords that bound (a cache of the slow check)
        self._round_robin: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self.stats = {"binds": 0, "submits": 0, "throttled": 0, "receipts_sent": 0, "receipts_acked": 0, "mo_sent": 0}

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, carrier) -> None:
        from pathlib import Path

        self.carrier = carrier
        await self._load_counts()
        loop = asyncio.get_running_loop()
        if self.port is not None:
            self._servers.append(await loop.create_server(lambda: self._session(False), self.host, self.port))
        if self.tls_port is not None:
            from .tls import server_context

            context, self.tls_cert_path = server_context(self.tls_cert, self.tls_key, Path(carrier.db_path).resolve().parent)
            self._servers.append(await loop.create_server(lambda: self._session(True), self.host, self.tls_port, ssl=context))
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="smsc-dispatch"))
        self._tasks.append(asyncio.create_task(self._timers_loop(), name="smsc-timers"))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self.sessions.values()):
            if session.state == "bound":
                session.send(P.make_pdu(P.UNBIND, 0))
            session.close()
        for server in self._servers:
            await server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._committing is not None:
            await asyncio.gather(self._committing, return_exceptions=True)

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self._servers if s.sockets]

    def _session(self, tls: bool) -> Session:
        bind_id = self._next_bind
        self._next_bind += 1
        return Session(self, bind_id, tls)

    async def _load_counts(self) -> None:
        """The per-destination counts and the next message number, from the books: a restarted
        SMSC decides the next message to a number exactly as it would have without the restart."""
        rows = await self.carrier.db.read(_smpp_messages)
        for tenant, number, _ in rows:
            key = (tenant, number)
            self._counts[key] = self._counts.get(key, 0) + 1
        last = max((n for *_, n in rows), default=0)
        for (mo,) in await self.carrier.db.fetchall("SELECT mo FROM sim_outbox WHERE mo IS NOT NULL"):
            msg_id = msgspec.json.decode(mo)[1]
            if msg_id.startswith("mo-") and msg_id[3:15].isdigit():
                last = max(last, int(msg_id[3:15]))
        self._next_number = last + 1

    # -- sessions ---------------------------------------------------------------------------------
    def session_opened(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.carrier.journal.add(self.carrier.clock.now(), "in", None, "connect", bind=session.id, peer=session.peer,
                                 tls=session.tls)

    def session_closed(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        if session.system_id is not None:
            binds = self.by_account.get(session.system_id, [])
            if session in binds:
                binds.remove(session)
        # what it was carrying goes again, to another bind or when the client binds again
        items = [c for c in session.inflight.values() if isinstance(c, OutItem)]
        session.inflight.clear()
        if items and self.carrier.outbox is not None:
            self.carrier.outbox.again([i for i in items if i.acked_at is None], self.carrier.clock.now(),
                                      "the bind closed before the client answered")
        self.carrier.journal.add(self.carrier.clock.now(), "in", session.system_id, "disconnect", bind=session.id)

    async def account_removed(self, name: str) -> None:
        for session in list(self.by_account.get(name, [])):
            session.send(P.make_pdu(P.UNBIND, 0))
            session.close()
        self._verified.pop(name, None)

    # -- the journal ------------------------------------------------------------------------------
    def journal_in(self, session: Session, pdu: P.Pdu | bytes) -> None:
        self.carrier.journal.pdu(self.carrier.clock.now(), "in", session.system_id, session.id, pdu)

    def journal_out(self, session: Session, pdu: P.Pdu | bytes) -> None:
        self.carrier.journal.pdu(self.carrier.clock.now(), "out", session.system_id, session.id, pdu)

    def journal_error(self, session: Session, error: P.PduError) -> None:
        self.carrier.journal.add(self.carrier.clock.now(), "in", session.system_id,
                                 P.command_name(error.command_id), bind=session.id,
                                 sequence=error.sequence_number, error=error.message, status=P.status_name(error.status))

    # -- what a client sends ----------------------------------------------------------------------
    def take(self, session: Session, pdu: P.Pdu) -> str | None:
        """Handle one PDU; ``"hold"`` while a bind is being checked."""
        self.journal_in(session, pdu)
        command = pdu.command_id
        if command & 0x80000000:
            self._response(session, command, pdu.command_status, pdu.sequence_number)
            return None
        if command in BIND_MODES:
            return self._bind(session, pdu)
        if session.state != "bound":
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RINVBNDSTS))
            return None
        if command == P.ENQUIRE_LINK:
            self._answer(session, pdu, P.make_resp(pdu))
        elif command == P.UNBIND:
            session.send(P.make_resp(pdu))
            session.close()
        elif command in (P.SUBMIT_SM, P.DATA_SM):
            self._submit(session, pdu)
        elif command == P.SUBMIT_MULTI:
            self._submit_multi(session, pdu)
        elif command == P.QUERY_SM:
            asyncio.get_running_loop().create_task(self._query(session, pdu))
        elif command == P.CANCEL_SM:
            asyncio.get_running_loop().create_task(self._cancel(session, pdu))
        elif command == P.REPLACE_SM:
            asyncio.get_running_loop().create_task(self._replace(session, pdu))
        elif command == P.GENERIC_NACK:
            pass  # journaled; nothing to answer
        else:  # outbind, alert_notification, deliver_sm: not what a client sends an SMSC
            self._answer(session, pdu, P.generic_nack(pdu.sequence_number, P.ESME_RINVCMDID))
        return None

    def _answer(self, session: Session, request: P.Pdu, resp: P.Pdu | bytes, delay: float = 0.0) -> None:
        """Send a response, unless session chaos leaves it unanswered or makes it wait."""
        chaos = self.carrier.profile.session
        if chaos.unanswered_rate and session.system_id is not None:
            count = self._requests[session.system_id] = self._requests.get(session.system_id, 0) + 1
            if draw(self.carrier.profile.seed, f"{session.system_id}:{count}", "unanswered") < chaos.unanswered_rate:
                return
        delay += chaos.response_delay
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, session.send, resp)
        else:
            session.send(resp)

    def chaos_drop(self, session: Session) -> bool:
        """Session chaos: a bind is cut after ``drop_after_pdus`` of its PDUs."""
        limit = self.carrier.profile.session.drop_after_pdus
        if limit is not None and session.pdus_in >= limit and session.state == "bound":
            self.carrier.journal.add(self.carrier.clock.now(), "out", session.system_id, "drop", bind=session.id,
                                     reason=f"session.drop_after_pdus={limit}")
            session.abort()
            return True
        return False

    # -- binds ------------------------------------------------------------------------------------
    def _bind(self, session: Session, pdu: P.Pdu) -> str | None:
        if session.state == "bound":
            session.send(P.make_resp(pdu, P.ESME_RALYBND))
            return None
        system_id = pdu.fields.get("system_id", "")
        account = self.carrier.accounts.get(system_id)
        if account is None or account.protocol != "smpp":
            session.send(P.make_resp(pdu, P.ESME_RINVSYSID))
            return None
        password = pdu.fields.get("password", "")
        digest = hashlib.sha256(f"{account.password_hash}\x00{password}".encode("utf-8", "surrogateescape")).hexdigest()
        if digest in self._verified.get(system_id, ()):
            self._bound(session, pdu, account)
            return None

        async def check() -> None:
            ok = await asyncio.to_thread(account.check, password)
            if ok:
                self._verified.setdefault(system_id, set()).add(digest)
                self._bound(session, pdu, account)
            else:
                session.send(P.make_resp(pdu, P.ESME_RINVPASWD))
            session.release()

        asyncio.get_running_loop().create_task(check())
        return "hold"

    def _bound(self, session: Session, pdu: P.Pdu, account) -> None:
        if session.state != "open":
            return
        binds = self.by_account.setdefault(account.name, [])
        if len(binds) >= account.max_binds:
            session.send(P.make_resp(pdu, P.ESME_RBINDFAIL))
            return
        session.state = "bound"
        session.mode = BIND_MODES[pdu.command_id]
        session.account = account
        session.window = account.receipt_window or account.window  # receipts and replies in flight
        session.receipts = ReceiptWriter(account.dialect)
        session.system_id = account.name
        binds.append(session)
        self.stats["binds"] += 1
        self.carrier.core.tenant(account.name).throughput_limit = account.throughput_limit
        session.send(P.make_resp(pdu, system_id=SMSC_ID, sc_interface_version=0x34))
        if session.can_receive:
            self._wake.set()

    # -- submissions ------------------------------------------------------------------------------
    def _submit(self, session: Session, pdu: P.Pdu) -> None:
        if not session.can_transmit:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RINVBNDSTS))
            return
        fields = pdu.fields
        number = _e164(fields.get("destination_addr", ""), fields.get("dest_addr_ton", 0))
        if number is None:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RINVDSTADR))
            return
        self._accept(session, pdu, number, fields)

    def _accept(self, session: Session, pdu: P.Pdu, number: str, fields: dict, multi: bool = False) -> Pending | int | None:
        """Admit one destination of a submission and queue it for the group commit; returns the
        queued submission, or the status it was refused with (already answered unless ``multi``)."""
        carrier = self.carrier
        account = session.account
        name = account.name
        tenant = carrier.core.tenant(name)
        profile = tenant.profile
        rule = tenant.rulebook(profile).match(number)
        respond_after = 0.0
        if rule is not None:
            if rule.respond == "never":
                return None
            if rule.smpp_status:
                return self._refuse(session, pdu, rule.smpp_status, multi)
            respond_after = rule.respond_after or 0.0
        now = carrier.clock.now()
        info = concat_info(pdu)
        if info is not None:
            ref, total, seq = info
            group = (name, fields.get("source_addr", ""), number, ref, total)
            known = self._concat.get(group)
            if known is not None:  # a later part of a message already decided: its own id, nothing new
                msg_id, first, parts = known
                if seq == parts:
                    self._concat.pop(group, None)
                resp_id = format_message_id(account.dialect, first + seq - 1)
                self._answer(session, pdu, P.make_resp(pdu, message_id=resp_id), respond_after)
                return None
        if session.unanswered >= account.window:  # the bind's window is full
            self.stats["throttled"] += 1
            return self._refuse(session, pdu, P.ESME_RTHROTTLED, multi)
        refusal = tenant.admit(1, now)
        if refusal is not None:
            if refusal.kind == "throttled":
                self.stats["throttled"] += 1
                return self._refuse(session, pdu, P.ESME_RTHROTTLED, multi)
            return self._refuse(session, pdu, P.ESME_RSYSERR, multi)
        parts = info[1] if info is not None else _parts_of(pdu)
        first = self._next_number
        self._next_number += parts
        msg_id = f"{first:012d}@{name}"
        if info is not None:
            self._concat[group] = (msg_id, first, parts)
            while len(self._concat) > CONCAT_KEPT:
                self._concat.popitem(last=False)
        count_key = (name, number)
        count = self._counts.get(count_key, 0)
        self._counts[count_key] = count + 1
        key = f"{name}:{number}:{count}"
        text = _quoted_text(fields.get("data_coding", GSM7), _text_octets(pdu)[:40])
        meta = Meta(first, parts, number, fields.get("source_addr", ""), fields.get("source_addr_ton", 0),
                    fields.get("source_addr_npi", 0), fields.get("registered_delivery", 0) & 0x03, text, now)
        early = bool(account.dialect.receipt_before_resp) and draw(profile.seed, key, "early") < account.dialect.receipt_before_resp
        resp_number = first + (info[2] - 1 if info is not None else 0)
        # a message_payload message is billed as its parts, but it is one message with one id to the
        # client, and so gets one receipt, for the whole (what SMSCs do with a long payload)
        receipt_parts = 1 if info is None and parts > 1 else 0
        pending = Pending(session, pdu, tenant, SubmitItem(msg_id, 0, number, "", parts), msg_id, key, meta, resp_number,
                          early, respond_after, receipt_parts)
        self.stats["submits"] += 1
        if not multi:
            self._enqueue(pending)
        return pending

    def _refuse(self, session: Session, pdu: P.Pdu, status: int, multi: bool) -> int:
        if not multi:
            self._answer(session, pdu, P.make_resp(pdu, status))
        return status

    def _submit_multi(self, session: Session, pdu: P.Pdu) -> None:
        if not session.can_transmit:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RINVBNDSTS))
            return
        accepted: list[Pending] = []
        unsuccess = []
        for dest in pdu.fields.get("dest_address") or []:
            if dest.get("dest_flag") != 1:
                unsuccess.append({"dest_addr_ton": 0, "dest_addr_npi": 0, "destination_addr": dest.get("dl_name", ""),
                                  "error_status_code": P.ESME_RINVDLNAME})
                continue
            number = _e164(dest.get("destination_addr", ""), dest.get("dest_addr_ton", 0))
            outcome = P.ESME_RINVDSTADR if number is None else self._accept(session, pdu, number, pdu.fields, multi=True)
            if isinstance(outcome, Pending):
                accepted.append(outcome)
            else:
                unsuccess.append({"dest_addr_ton": dest.get("dest_addr_ton", 0), "dest_addr_npi": dest.get("dest_addr_npi", 0),
                                  "destination_addr": dest.get("destination_addr", ""),
                                  "error_status_code": outcome if isinstance(outcome, int) else P.ESME_RSYSERR})
        if not accepted:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RINVNUMDESTS if not unsuccess else P.ESME_RSUBMITFAIL))
            return
        # one response for all: the first destination's id, and the ones that were refused
        for pending in accepted[1:]:
            pending.session = None  # answered with the first
        accepted[0].request = P.Pdu(pdu.command_id, 0, pdu.sequence_number, {**pdu.fields, "_unsuccess": unsuccess}, pdu.tlvs)
        for pending in accepted:
            self._enqueue(pending)

    def _enqueue(self, pending: Pending) -> None:
        if pending.session is not None:
            pending.session.unanswered += 1
        self._pending.append(pending)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.get_running_loop().create_task(self._commit())

    async def _commit(self) -> None:
        """Group commit: the submissions of every bind that arrived meanwhile, in one transaction
        per account, then their responses (a message id is given only for what is on disk)."""
        await asyncio.sleep(0)  # let this loop turn's other PDUs join
        while self._pending:
            batch, self._pending = self._pending[:COMMIT_MAX], self._pending[COMMIT_MAX:]
            by_tenant: dict[Any, list[Pending]] = {}
            for pending in batch:
                by_tenant.setdefault(pending.tenant, []).append(pending)
            for tenant, group in by_tenant.items():
                try:
                    refused, due_rows = await self.carrier.core.submit(
                        tenant, [p.item for p in group], [p.msg_id for p in group], [p.key for p in group], known=False,
                        extras=[p.meta for p in group], receipt_parts=[p.receipt_parts or p.item.parts for p in group])
                except Exception:
                    log.exception("recording %d submissions failed", len(group))
                    for p in group:
                        if p.session is not None:
                            p.session.unanswered -= 1
                            self._answer(p.session, p.request, P.make_resp(p.request, P.ESME_RSYSERR))
                    continue
                for p in group:
                    self._remember(p.msg_id, p.meta)
                for p in group:
                    self._respond(p, refused.get(p.msg_id))
                if due_rows:
                    self.carrier.wake()

    def _respond(self, p: Pending, refused_code: str | None) -> None:
        if p.session is None:
            return
        p.session.unanswered -= 1
        request = p.request
        if refused_code is not None:
            self._answer(p.session, request, P.make_resp(request, REFUSAL_STATUS.get(refused_code, P.ESME_RSUBMITFAIL)))
            return
        message_id = format_message_id(p.session.account.dialect, p.number)
        unsuccess = request.fields.get("_unsuccess")
        if unsuccess is not None:
            resp = P.make_resp(request, message_id=message_id, unsuccess_sme=unsuccess)
        else:  # the usual answer as octets: a Pdu and the codec were a third of this path
            resp = P.frame(request.command_id | 0x80000000, 0, request.sequence_number, message_id.encode("ascii") + b"\0")
        if p.early:  # receipt_before_resp: the response waits for the receipt
            self._held_resps.setdefault(p.msg_id, []).append((p.session, resp, time.monotonic() + EARLY_HOLD))
            return
        self._answer(p.session, request, resp, p.respond_after)

    # -- query, cancel, replace -------------------------------------------------------------------
    async def _find(self, session: Session, message_id: str) -> tuple[str, Meta, dict] | None:
        """The message (of this bind's account) a client-given id names, with its ground truth."""
        dialect = session.account.dialect
        if dialect.message_id == "uuid":
            number = next((n for mid, m in reversed(self._metas.items()) if mid.endswith("@" + session.system_id)
                           for n in range(m.n, m.n + m.parts) if format_message_id(dialect, n) == message_id), None)
        else:
            raw = normalise_id(message_id, "hex-to-dec" if dialect.message_id in ("hex", "HEX") else "strip-padding",
                               from_receipt=False)
            number = int(raw) if raw.isdigit() else None
        if number is None:
            return None
        row = await self.carrier.db.read(books.message_at_or_before, session.system_id,
                                         f"{number:012d}@{session.system_id}")
        if row is None or row[-1] is None:
            return None
        msg_id = row[0]
        meta = (await self._metas_of([msg_id])).get(msg_id)
        if meta is None or number >= meta.n + meta.parts:
            return None
        items = await self.carrier.core.messages(session.system_id, [msg_id], self.carrier.receipt_timeout)
        return (msg_id, meta, items[0]) if items else None

    async def _query(self, session: Session, pdu: P.Pdu) -> None:
        found = await self._find(session, pdu.fields.get("message_id", ""))
        if found is None:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RQUERYFAIL))
            return
        msg_id, meta, item = found
        now = self.carrier.clock.now()
        state, final, error = _state_at(item, meta, now)
        final_date = datetime.fromtimestamp(final, timezone.utc).strftime("%y%m%d%H%M%S000+") if final else ""
        self._answer(session, pdu, P.make_resp(pdu, message_id=pdu.fields.get("message_id", ""), final_date=final_date,
                                               message_state=state, error_code=error & 0xFF))

    async def _cancel(self, session: Session, pdu: P.Pdu) -> None:
        found = await self._find(session, pdu.fields.get("message_id", ""))
        if found is None:
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RCANCELFAIL))
            return
        msg_id, meta, item = found
        now = self.carrier.clock.now()
        if meta.canceled_at is not None or any(r["emitted_at"] is not None for r in item["receipts"]):
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RCANCELFAIL))  # too late: it was delivered or failed
            return
        meta.canceled_at = now
        self.carrier.core.due.remove(lambda row: row[2] == msg_id)
        await self._changed(msg_id, meta)
        self._answer(session, pdu, P.make_resp(pdu))

    async def _replace(self, session: Session, pdu: P.Pdu) -> None:
        found = await self._find(session, pdu.fields.get("message_id", ""))
        if found is None or found[1].canceled_at is not None or any(r["emitted_at"] is not None for r in found[2]["receipts"]):
            self._answer(session, pdu, P.make_resp(pdu, P.ESME_RREPLACEFAIL))
            return
        msg_id, meta, _ = found
        meta.text = decode_text(pdu.fields.get("data_coding", GSM7), pdu.fields.get("short_message") or b"")[:20]
        if pdu.fields.get("registered_delivery") is not None:
            meta.registered_delivery = pdu.fields["registered_delivery"] & 0x03
        await self._changed(msg_id, meta)
        self._answer(session, pdu, P.make_resp(pdu))

    # -- responses from the client ----------------------------------------------------------------
    def take_receipt_answer(self, session: Session, frame: bytes) -> None:
        """A deliver_sm_resp with an empty body, read from its header (the codec would build a Pdu
        of it for nothing): one arrives for every receipt."""
        self.journal_in(session, frame)
        self._response(session, P.DELIVER_SM_RESP, int.from_bytes(frame[8:12], "big"), int.from_bytes(frame[12:16], "big"))

    def _response(self, session: Session, command_id: int, status: int, sequence_number: int) -> None:
        carried = session.inflight.pop(sequence_number, None)
        if carried is None:
            return  # journaled; nothing was waiting for it
        if isinstance(carried, OutItem):
            now = self.carrier.clock.now()
            if status == P.ESME_ROK and command_id != P.GENERIC_NACK:
                self.carrier.outbox.acked(carried, now)
                self.stats["receipts_acked"] += 1
            else:  # a refusal, or a generic_nack (a client that could not read it) whatever its status
                self.carrier.outbox.again([carried], now + RETRY_REFUSED,
                                          f"the client answered {P.command_name(command_id)} {P.status_name(status)}")
            if session.room >= session.window // 2:
                self._wake.set()  # half its window is free: send more in one go

    # -- receipts and mobile-originated messages out ----------------------------------------------
    async def _dispatch_loop(self) -> None:
        await keep_delivering(self.carrier.outbox, self.dispatch, self._wake, log, "sending receipts failed; retrying")

    async def dispatch(self) -> int:
        """Send every account's due receipts and MOs its receiver binds have room for."""
        carrier = self.carrier
        outbox = carrier.outbox
        now = carrier.clock.now()
        sent = 0
        for name, binds in list(self.by_account.items()):
            receivers = [s for s in binds if s.can_receive]
            room = sum(s.room for s in receivers)
            if room <= 0:
                continue
            items = outbox.take(now, name, room)
            if not items:
                continue
            metas = await self._metas_of([i.msg_id for i in items if i.kind == RECEIPT])
            back: list[OutItem] = []
            skipped: list[OutItem] = []
            handed: list[OutItem] = []
            turn = self._round_robin.get(name, 0)
            try:
                for item in items:
                    meta = metas.get(item.msg_id) if item.kind == RECEIPT else None
                    if item.kind == RECEIPT and (meta is None or meta.canceled_at is not None
                                                 or not _requested(meta.registered_delivery, item.status)):
                        skipped.append(item)
                        continue
                    session = None
                    for k in range(len(receivers)):
                        candidate = receivers[(turn + k) % len(receivers)]
                        if candidate.room > 0 and candidate.state == "bound":
                            session = candidate
                            turn = (turn + k + 1) % len(receivers)
                            break
                    if session is None:
                        back.append(item)
                        continue
                    if item.kind == RECEIPT:
                        writer = session.receipts
                        session.request_body(writer.command_id, self._receipt(writer, item, meta), item)
                    else:
                        session.request(self._mo(item), item)
                    handed.append(item)
                    sent += 1
                    if item.kind == RECEIPT:
                        self.stats["receipts_sent"] += 1
                        self._release_resps(item.msg_id)
                    else:
                        self.stats["mo_sent"] += 1
            finally:  # marked sent once the loop is done: one call, not one per receipt
                outbox.sent(handed, now)
            self._round_robin[name] = turn
            if skipped:
                outbox.not_requested(skipped, now)
            if back:
                outbox.again(back, now)
        return sent

    def _receipt(self, writer: ReceiptWriter, item: OutItem, meta: Meta) -> bytes:
        """The receipt's PDU body: from the handset the message went to, to its sender."""
        part = item.part if item.part is not None and item.part < meta.parts else 0
        state, err = smpp_state(item.status, item.code)
        return writer.body(message_number=meta.n + part, submit_time=_utc(meta.submitted_at), done_time=_utc(item.due_at),
                           stat=state, err=err, text_bytes=gsm_or_question_marks(meta.text),
                           source_addr=meta.destination.lstrip("+"), destination_addr=meta.source,
                           dest_addr_ton=meta.source_ton, dest_addr_npi=meta.source_npi)

    def _mo(self, item: OutItem) -> P.Pdu:
        body = msgspec.json.decode(item.body or "{}")
        text = body.get("text", "")
        coding = choose_coding(text)
        data = encode_text(text, coding)
        fields = {"source_addr": body.get("from", "").lstrip("+"), "source_addr_ton": 1, "source_addr_npi": 1,
                  "destination_addr": body.get("to", ""), "dest_addr_ton": 0, "dest_addr_npi": 0, "esm_class": 0,
                  "data_coding": coding}
        if len(data) > 254:
            return P.make_pdu(P.DELIVER_SM, **fields, message_payload=data)
        return P.make_pdu(P.DELIVER_SM, **fields, short_message=data)

    async def mobile_originated(self, account: str, sender: str, to: str, text: str) -> dict:
        """A reply from a handset to ``account`` (``POST /mo``), sent as a deliver_sm to its
        receiver binds, now or when one binds."""
        now = self.carrier.clock.now()
        mo_id = f"mo-{self._next_number:012d}@{account}"
        self._next_number += 1
        item = await self.carrier.outbox.add_mo(account, mo_id, now, {"from": sender, "to": to, "text": text})
        self._wake.set()
        return {"id": mo_id, "account": account, "from": sender, "to": to, "text": text,
                "at": _iso(now), "delivery": "planned", "rid": item.rid}

    def _release_resps(self, msg_id: str) -> None:
        held = self._held_resps.pop(msg_id, None)
        for session, resp, _ in held or ():
            session.send(resp)  # after the receipt: the order receipt_before_resp asks for

    # -- timers: held responses, resends, enquire_link, scheduled drops ---------------------------
    async def _timers_loop(self) -> None:
        last_enquire: dict[int, float] = {}
        dropped: set[float] = set()
        while True:
            await asyncio.sleep(0.1)
            try:
                self._timers(last_enquire, dropped)
            except Exception:
                log.exception("SMSC timers failed")

    def _timers(self, last_enquire: dict[int, float], dropped: set[float]) -> None:
        carrier = self.carrier
        real = time.monotonic()
        now = carrier.clock.now()
        for msg_id in [m for m, held in self._held_resps.items() if all(deadline <= real for *_, deadline in held)]:
            self._release_resps(msg_id)
        resend = {}
        for name, binds in self.by_account.items():
            after = binds[0].account.dialect.resend_unacked_after if binds else None
            if after:
                resend[name] = after
        if resend:
            stale = [i for i in carrier.outbox.unacked_before(now) if i.tenant in resend and i.sent_at <= now - resend[i.tenant]]
            if stale:
                carrier.outbox.again(stale, now, "not acknowledged: sent again")
        chaos = carrier.profile.session
        if chaos.enquire_link_interval:
            for session in list(self.sessions.values()):
                if session.state != "bound":
                    continue
                waiting = [seq for seq, c in session.inflight.items() if isinstance(c, tuple) and c[0] == "enquire_link"]
                if waiting and real - session.inflight[waiting[0]][1] > chaos.enquire_link_timeout:
                    carrier.journal.add(now, "out", session.system_id, "drop", bind=session.id,
                                        reason="enquire_link not answered")
                    session.send(P.make_pdu(P.UNBIND, 0))
                    session.close()
                elif not waiting and real - last_enquire.get(session.id, 0.0) >= chaos.enquire_link_interval:
                    last_enquire[session.id] = real
                    session.request(P.make_pdu(P.ENQUIRE_LINK, 0), ("enquire_link", real))
        if chaos.drop_at:
            anchor = carrier.core.default.outages_anchor or now
            for value in chaos.drop_at:
                instant = outage_time(value, anchor)
                if instant <= now and instant not in dropped:
                    dropped.add(instant)
                    for session in list(self.sessions.values()):
                        carrier.journal.add(now, "out", session.system_id, "drop", bind=session.id,
                                            reason=f"session.drop_at {_iso(instant)}")
                        session.abort()

    # -- per-message data -------------------------------------------------------------------------
    def _remember(self, msg_id: str, meta: Meta) -> None:
        self._metas[msg_id] = meta
        self._metas.move_to_end(msg_id)
        while len(self._metas) > META_KEPT:
            self._metas.popitem(last=False)

    async def _metas_of(self, msg_ids: list[str]) -> dict[str, Meta]:
        """Per message its data: from memory, else as a cancel or replace left it, else from its
        batch (a message from before a restart)."""
        found = {m: self._metas[m] for m in msg_ids if m in self._metas}
        missing = [m for m in msg_ids if m not in found]
        if missing:
            for msg_id, meta in await self.carrier.db.read(_read_metas, missing):
                found[msg_id] = meta
                self._remember(msg_id, meta)
        return found

    async def _changed(self, msg_id: str, meta: Meta) -> None:
        """A cancel or replace changed a message's data: kept beside its batch, which is not rewritten."""
        value = msgspec.json.encode(meta).decode()
        await self.carrier.db.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO sim_state(key, value) VALUES (?, ?)", (f"smpp_meta:{msg_id}", value)))
        self._remember(msg_id, meta)

    # -- the carrier's view -----------------------------------------------------------------------
    def tenant_of(self, msg_id: str) -> str | None:
        at = msg_id.rfind("@")
        return msg_id[at + 1:] if at > 0 else None

    def present(self, item: dict[str, Any]) -> None:
        """Ground truth per account: the message's ids as the account's dialect writes them."""
        msg_id = item["_id"]
        account = self.carrier.accounts.get(self.tenant_of(msg_id) or "")
        first = int(msg_id[:12])
        dialect = account.dialect if account is not None else None
        ids = [format_message_id(dialect, first + p) for p in range(item["parts"])] if dialect else []
        meta = self._metas.get(msg_id)
        if meta is None and item.get("_extra") is not None:
            meta = msgspec.convert(item["_extra"], Meta)
        item["message_id"] = ids[0] if ids else None
        item["message_ids"] = ids
        item["destination"] = item.pop("number")
        if meta is not None:
            item["source"] = meta.source
            item["registered_delivery"] = meta.registered_delivery
            if meta.canceled_at is not None:
                item["canceled_at"] = _iso(meta.canceled_at)
        for r in item["receipts"]:
            part = r["part"] if r["part"] is not None and r["part"] < len(ids) else 0
            r["message_id"] = ids[part] if ids else None
        item["platform_id"] = item["message_id"] if item["outcome"] != "refused" else None


def _requested(registered_delivery: int, status: str | None) -> bool:
    """registered_delivery 1: every final receipt; 2: failures only; 0: none."""
    return registered_delivery == 1 or (registered_delivery == 2 and status == "failed")


def _e164(address: str, ton: int) -> str | None:
    """A destination as E.164 (+digits), or None when it is not a phone number."""
    digits = address[1:] if address.startswith("+") else address
    if not (5 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()):
        return None
    return "+" + digits


def _text_octets(pdu: P.Pdu) -> bytes:
    data = pdu.fields.get("short_message") or pdu.tlvs.get("message_payload", b"")
    if pdu.fields.get("esm_class", 0) & ESM_UDHI:
        data = split_udh(data)[1]
    return data


@functools.lru_cache(maxsize=1024)  # a task sends one text to every number
def _quoted_text(data_coding: int, octets: bytes) -> str:
    """The first 20 characters of a text (what its receipts quote)."""
    return decode_text(data_coding, octets)[:20]


def _parts_of(pdu: P.Pdu) -> int:
    """The parts a one-PDU message is billed as: a message_payload may hold a long text."""
    data = pdu.tlvs.get("message_payload")
    if not data:
        return 1
    from gateway.domain.segments import segment
    from gateway.wire.smpp.text import decode_text

    return min(segment(decode_text(pdu.fields.get("data_coding", GSM7), data)).parts, 63)


def _utc(ts: float) -> datetime:
    """A receipt's dates have whole seconds at most: one datetime per second serves them all."""
    return _utc_second(int(ts))


@functools.lru_cache(maxsize=4096)
def _utc_second(second: int) -> datetime:
    return datetime.fromtimestamp(second, timezone.utc)


def _iso(ts: float) -> str:
    from gateway.clock import to_rfc3339

    return to_rfc3339(ts)


def _state_at(item: dict, meta: Meta, now: float) -> tuple[int, float | None, int]:
    """(message_state, final date, error code) of a message at service time ``now``."""
    from gateway.wire.smpp.receipts import MESSAGE_STATES

    if meta.canceled_at is not None:
        return MESSAGE_STATES["DELETED"], meta.canceled_at, 0
    emitted = [r for r in item["receipts"] if r["emitted_at"] is not None and not r["duplicate"]]
    if item["outcome"] == "refused":
        return MESSAGE_STATES["REJECTED"], meta.submitted_at, 0
    if not emitted:
        return MESSAGE_STATES["ENROUTE"], None, 0
    last = max(emitted, key=lambda r: r["due_at"])
    failed = next((r for r in emitted if r["status"] == "failed"), None)
    state, err = smpp_state(failed["status"], failed["code"]) if failed else smpp_state("delivered", "DELIVERED")
    return MESSAGE_STATES[state], last["due_at"], err


def _read_metas(conn, msg_ids: list[str]) -> list[tuple[str, Meta]]:
    out = []
    for msg_id in msg_ids:
        row = conn.execute("SELECT value FROM sim_state WHERE key = ?", (f"smpp_meta:{msg_id}",)).fetchone()
        if row is not None:
            out.append((msg_id, msgspec.json.decode(row[0], type=Meta)))
            continue
        tenant = msg_id.rpartition("@")[2]
        found = books.message_rows(conn, tenant, [msg_id])
        if found and found[0][-1] is not None:
            out.append((msg_id, msgspec.convert(found[0][-1], Meta)))
    return out


def _smpp_messages(conn) -> list[tuple[str, str, int]]:
    """(account, destination, last number) of every message the SMSC recorded (for the counts)."""
    out = []
    for tenant, messages in conn.execute("SELECT tenant, messages FROM sim_batches WHERE tenant IS NOT NULL"):
        for msg_id, number, parts, *_ in bulk.decode(messages):
            if "@" in msg_id and msg_id[:12].isdigit():
                out.append((tenant, number, int(msg_id[:12]) + parts - 1))
    return out

