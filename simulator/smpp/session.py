"""One SMPP connection to the SMSC: framing, the bind state machine, and the write path.

States: ``open`` (connected, not bound: only a bind is answered with success), ``bound`` (as
transmitter, receiver or transceiver), ``closing`` (unbound or being dropped). Requests from the
client are answered by the SMSC (``smsc.py``) through ``respond``; the SMSC's own requests to the
client (receipts, mobile-originated messages, enquire_link) go through ``request``, which keeps
them in a window until the client's response comes back.

The session is an ``asyncio.Protocol``, not a stream: a PDU costs a callback, not a coroutine
switch, and every PDU written during one turn of the event loop leaves in one ``writelines``.
A malformed frame is answered with ``generic_nack`` and the session goes on; a bad
``command_length`` is answered too, and then the connection is closed (the stream cannot be
re-synchronised after it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from gateway.wire.smpp import pdu as P
from gateway.wire.smpp.receipts import ReceiptWriter

if TYPE_CHECKING:
    from .smsc import Smsc

log = logging.getLogger("smslab.smsc")

TRANSMITTER, RECEIVER, TRANSCEIVER = "transmitter", "receiver", "transceiver"
BIND_MODES = {P.BIND_TRANSMITTER: TRANSMITTER, P.BIND_RECEIVER: RECEIVER, P.BIND_TRANSCEIVER: TRANSCEIVER}
_DELIVER_SM_RESP = P.DELIVER_SM_RESP.to_bytes(4, "big")
WINDOW = 10  # requests of the SMSC's own a client may leave unanswered (receipts in flight per bind)


class Session(asyncio.Protocol):
    def __init__(self, smsc: "Smsc", bind_id: int, tls: bool = False):
        self.smsc = smsc
        self.id = bind_id
        self.tls = tls
        self.reader = P.PduReader()
        self.transport: asyncio.Transport | None = None
        self.state = "open"
        self.mode: str | None = None
        self.account = None  # simulator.accounts.Account once bound
        self.receipts: ReceiptWriter | None = None  # its account's receipt dialect, once bound
        self.system_id: str | None = None
        self.peer = ""
        self.pdus_in = 0
        self.unanswered = 0  # the client's submissions waiting for their group commit
        self.window = WINDOW
        self.inflight: dict[int, Any] = {}  # our sequence number -> what it carried (an outbox item, "enquire_link")
        self._next_seq = 1
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._held: list[bytes] | None = None  # frames that arrived while a bind was being checked

    # -- the connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        self.smsc.session_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        self.transport = None
        self.smsc.session_closed(self)

    def close(self) -> None:
        """Flush what is written, then close."""
        self.state = "closing"
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (session chaos: a carrier that hangs up)."""
        self.state = "closing"
        self._out.clear()
        if self.transport is not None:
            self.transport.abort()

    @property
    def can_transmit(self) -> bool:
        return self.state == "bound" and self.mode in (TRANSMITTER, TRANSCEIVER)

    @property
    def can_receive(self) -> bool:
        return self.state == "bound" and self.mode in (RECEIVER, TRANSCEIVER)

    @property
    def room(self) -> int:
        return self.window - len(self.inflight) if self.can_receive else 0

    # -- reading -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.state in ("closing", "closed"):
            return
        try:
            frames = self.reader.feed(data)
        except P.PduError as error:
            # the frame boundaries are lost: say why, then hang up
            self.smsc.journal_error(self, error)
            self.send(P.generic_nack(error.sequence_number, error.status))
            self.close()
            return
        if self._held is not None:
            self._held.extend(frames)
            return
        self._take(frames)

    def _take(self, frames: list[bytes]) -> None:
        smsc = self.smsc
        for i, frame in enumerate(frames):
            if self.state in ("closing", "closed"):
                return
            self.pdus_in += 1
            if len(frame) == 17 and frame[4:8] == _DELIVER_SM_RESP and frame[16] == 0:
                smsc.take_receipt_answer(self, frame)  # the usual answer to a receipt: no codec needed
                if smsc.chaos_drop(self):
                    return
                continue
            try:
                pdu = P.decode(frame)
            except P.PduError as error:
                smsc.journal_error(self, error)
                if error.command_id and not error.command_id & 0x80000000 and error.command_id in P.COMMAND_FIELDS \
                        and (error.command_id | 0x80000000) in P.COMMAND_FIELDS:
                    self.send(P.Pdu(error.command_id | 0x80000000, error.status, error.sequence_number))
                else:
                    self.send(P.generic_nack(error.sequence_number, error.status))
                continue
            if smsc.take(self, pdu) == "hold":
                # a bind is being checked (a password hash takes a while): what follows waits
                self._held = list(frames[i + 1:])
                return
            if smsc.chaos_drop(self):
                return

    def release(self) -> None:
        """The bind check ended: take the frames that arrived meanwhile."""
        held, self._held = self._held or [], None
        if held and self.state not in ("closing", "closed"):
            self._take(held)

    # -- writing -------------------------------------------------------------------------------
    def send(self, pdu: P.Pdu | bytes) -> None:
        """Write a PDU (a response, or a request whose answer is not awaited) this loop turn; a
        hot path may give the frame's octets instead of a Pdu (the journal keeps either)."""
        if self.transport is None or self.state == "closed":
            return
        self.smsc.journal_out(self, pdu)
        self._out.append(pdu if type(pdu) is bytes else P.encode(pdu))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def request(self, pdu: P.Pdu, carried: Any) -> int:
        """Send a request of the SMSC's own, awaiting the client's response (kept in the window)."""
        pdu.sequence_number = seq = self._in_window(carried)
        self.send(pdu)
        return seq

    def request_body(self, command_id: int, body: bytes, carried: Any) -> int:
        """:meth:`request` for a request already encoded but for its header (a receipt)."""
        seq = self._in_window(carried)
        self.send(P.frame(command_id, 0, seq, body))
        return seq

    def _in_window(self, carried: Any) -> int:
        """The next sequence number, with what its request carries kept until the answer."""
        seq = self._next_seq
        self._next_seq = seq + 1 if seq < 0x7FFFFFFF else 1
        self.inflight[seq] = carried
        return seq

    def _flush(self) -> None:
        self._flush_handle = None
        if self._out and self.transport is not None:
            out, self._out = self._out, []
            self.transport.writelines(out)
