"""One SMPP session to the SMSC, kept up: connect (TLS for ``smpps``), bind, a window of
unanswered requests, ``enquire_link`` when quiet (and answering the SMSC's), and on any loss a
reconnect after an exponential backoff with jitter (so a hundred gateways do not reconnect in
step after an SMSC restart).

Two kinds of request share the window. The session's own (bind, ``enquire_link``, ``unbind``)
go through :meth:`EsmeSession.request`, a coroutine with a future. The platform's ``submit_sm``
go through :meth:`EsmeSession.send_submit`, pre-encoded, with a :class:`Waiter` that the
response, the timeout or the loss of the session is handed to by a callback: at thousands of
parts a second a coroutine, a future and a timer per part cost more than the PDUs themselves.
What the SMSC sends on its own (receipts and replies in ``deliver_sm``/``data_sm``) goes to the
platform's handler, which answers it when it is safely stored.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
import ssl
from typing import TYPE_CHECKING, Any, Callable

from gateway.wire.smpp import pdu as P

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("smslab.smpp")

MODES = {"trx": P.BIND_TRANSCEIVER, "tx": P.BIND_TRANSMITTER, "rx": P.BIND_RECEIVER}

_HEADER = P._HEADER
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_RESP = 0x80000000
_SUBMIT_SM = P.SUBMIT_SM
_SUBMIT_SM_RESP = P.SUBMIT_SM_RESP
_DELIVER_SM = P.DELIVER_SM


class SessionLost(ConnectionError):
    """The session closed while a request waited for its answer (it may or may not have arrived)."""


class Waiter:
    """A request in the window, waiting for its response until ``deadline`` (loop time)."""

    __slots__ = ("deadline",)


class _Request(Waiter):
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future):
        self.future = future


def ack_bytes(command_id: int, status: int, sequence_number: int) -> bytes:
    """The ``deliver_sm_resp``/``data_sm_resp`` to a request, its message_id empty, as the codec
    writes it (``make_resp(pdu, status, message_id="")``): a receipt a part is answered with these
    17 octets, with no Pdu to build and encode."""
    return _pack_header(17, command_id | _RESP, status, sequence_number) + b"\0"


class EsmeSession(asyncio.Protocol):
    def __init__(self, settings: "Settings", mode: str, index: int, on_request: Callable[["EsmeSession", P.Pdu], Any],
                 on_state: Callable[[], None], on_answer: Callable[[Waiter, int, str], Any] | None = None,
                 on_expired: Callable[[Waiter], Any] | None = None, on_lost: Callable[[list[Waiter]], Any] | None = None,
                 on_room: Callable[[], Any] | None = None,
                 on_deliver: Callable[["EsmeSession", bytes, int], bool] | None = None):
        self.settings = settings
        self.mode = mode  # trx, tx or rx
        self.index = index
        self.on_request = on_request
        self.on_state = on_state
        # the platform's callbacks for what it sent with send_submit: answered (status, message_id),
        # never answered in time, lost with the session; on_room when answers free the window
        self.on_answer = on_answer
        self.on_expired = on_expired
        self.on_lost = on_lost
        self.on_room = on_room
        self.on_deliver = on_deliver  # a deliver_sm frame, before decoding: True when it took it
        self.transport: asyncio.Transport | None = None
        self.state = "closed"  # closed -> connecting -> bound
        self.reader = P.PduReader()
        self.inflight: dict[int, Waiter] = {}  # sequence number -> its waiter, oldest first
        self._room_waiters: collections.deque[asyncio.Future] = collections.deque()  # request()s waiting for a slot
        self._expiry: asyncio.TimerHandle | None = None
        self._next_seq = 1
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._lost: asyncio.Future | None = None
        self._last_io = 0.0
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.binds = 0  # how many times it bound (1 + reconnects)

    @property
    def can_transmit(self) -> bool:
        return self.state == "bound" and self.mode in ("trx", "tx")

    @property
    def free(self) -> int:
        return self.settings.window - len(self.inflight)

    @property
    def room(self) -> int:
        """Slots send_submit may fill: a request() waiting for a slot goes first, else a window
        kept full by the platform would never let an enquire_link or an unbind in."""
        if self.state != "bound" or self.mode == "rx" or self.transport is None:
            return 0
        return self.settings.window - len(self.inflight) - len(self._room_waiters)

    # -- keeping it up ----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_up(), name=f"smpp-{self.settings.name}-{self.index}")

    async def stop(self) -> None:
        """Unbind cleanly (waiting briefly for the SMSC's answer), then close."""
        self._stopping = True
        if self.state == "bound":
            try:
                await asyncio.wait_for(self.request(P.make_pdu(P.UNBIND)), 2.0)
            except Exception:
                pass
        if self.transport is not None:
            self.transport.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _keep_up(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._connect_and_bind()
                failures = 0
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s session %d: %s", self.settings.name, self.index, exc)
            if self._stopping:
                return
            failures += 1
            s = self.settings
            delay = min(s.reconnect_max, s.reconnect_min * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)

    async def _connect_and_bind(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        context = None
        if s.tls:
            context = ssl.create_default_context(cafile=s.cafile)
            if not s.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self.state = "connecting"
        self.reader = P.PduReader()
        self._lost = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, s.host, s.port, ssl=context), s.timeout)
        resp = await self.request(P.make_pdu(MODES[self.mode], system_id=s.system_id, password=s.password,
                                             system_type=s.system_type, interface_version=0x34))
        if resp.command_status != P.ESME_ROK:
            self.transport.close()
            raise ConnectionError(f"bind refused: {P.status_name(resp.command_status)}")
        self.state = "bound"
        self.binds += 1
        self.on_state()

    async def _serve(self) -> None:
        """Until the connection is lost: an enquire_link whenever it has been quiet."""
        s = self.settings
        loop = asyncio.get_running_loop()
        while True:
            quiet = loop.time() - self._last_io
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), max(s.enquire_link - quiet, 0.05))
                return
            except TimeoutError:
                pass
            if loop.time() - self._last_io >= s.enquire_link:
                try:
                    await self.request(P.make_pdu(P.ENQUIRE_LINK))
                except (TimeoutError, SessionLost):
                    if self.transport is not None:
                        self.transport.abort()  # a silent SMSC: reconnect
                    return

    # -- the connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._last_io = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.state
        self.state = "closed"
        self.transport = None
        self._out = []
        waiting, self.inflight = self.inflight, {}
        parts: list[Waiter] = []
        for waiter in waiting.values():
            if waiter.__class__ is _Request:
                if not waiter.future.done():
                    waiter.future.set_exception(SessionLost("the session closed before the SMSC answered"))
            else:
                parts.append(waiter)
        self._wake_room_waiters()  # they find no transport and give up
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if parts and self.on_lost is not None:
            self.on_lost(parts)
        if was == "bound":
            self.on_state()

    def data_received(self, data: bytes) -> None:
        self._last_io = asyncio.get_running_loop().time()
        try:
            frames = self.reader.feed(data)
        except P.PduError as error:
            log.warning("%s session %d: unreadable stream from the SMSC (%s); reconnecting", self.settings.name, self.index, error)
            if self.transport is not None:
                self.transport.abort()
            return
        inflight = self.inflight
        on_answer = self.on_answer
        on_deliver = self.on_deliver
        # the answers first, and the window refilled and written at once: the SMSC works on the
        # next submissions while the receipts of this read are taken here (they go after the
        # answers, in their order; an answer is never held back by a receipt before it)
        rest = []
        answered = False
        for frame in frames:
            _length, command_id, status, seq = _unpack_header(frame)
            if command_id == _SUBMIT_SM_RESP:
                size = len(frame)
                if size == 16:
                    message_id = ""
                else:
                    nul = frame.find(0, 16)
                    message_id = frame[16:nul].decode("latin-1") if nul == size - 1 and nul < 16 + 65 else None
                if message_id is not None:
                    waiter = inflight.pop(seq, None)
                    if waiter is None:
                        continue
                    answered = True
                    if waiter.__class__ is _Request:
                        if not waiter.future.done():
                            waiter.future.set_result(P.decode(frame))
                    else:
                        on_answer(waiter, status, message_id)
                    continue
            rest.append((frame, command_id, seq))
        if answered:
            self._room_freed()
            self._flush()
            answered = False
        for frame, command_id, seq in rest:
            if command_id == _DELIVER_SM and on_deliver is not None and on_deliver(self, frame, seq):
                continue
            try:
                pdu = P.decode(frame)
            except P.PduError as error:
                log.warning("%s session %d: %s", self.settings.name, self.index, error)
                if error.command_id and not error.command_id & 0x80000000:
                    self.send(P.generic_nack(error.sequence_number, error.status))
                continue
            if pdu.command_id & 0x80000000:
                waiter = inflight.pop(pdu.sequence_number, None)
                if waiter is None:
                    continue
                answered = True
                if waiter.__class__ is _Request:
                    if not waiter.future.done():
                        waiter.future.set_result(pdu)
                else:
                    on_answer(waiter, pdu.command_status, pdu.fields.get("message_id", ""))
                continue
            if pdu.command_id == P.ENQUIRE_LINK:
                self.send(P.make_resp(pdu))
            elif pdu.command_id == P.UNBIND:
                self.send(P.make_resp(pdu))
                self._flush()
                if self.transport is not None:
                    self.transport.close()
            elif pdu.command_id in (P.DELIVER_SM, P.DATA_SM):
                self.on_request(self, pdu)
            else:
                self.send(P.generic_nack(pdu.sequence_number, P.ESME_RINVCMDID))
        if answered:
            self._room_freed()

    def _room_freed(self) -> None:
        if self._room_waiters:
            self._wake_room_waiters()
        if self.on_room is not None:
            self.on_room()

    def _wake_room_waiters(self) -> None:
        for future in self._room_waiters:
            if not future.done():
                future.set_result(None)

    # -- timeouts ---------------------------------------------------------------------------------
    def _arm_expiry(self, deadline: float) -> None:
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        """One timer per session rather than one per request: at each firing, what is past its
        deadline expires, and the timer is set again for the earliest deadline left."""
        self._expiry = None
        inflight = self.inflight
        if not inflight:
            return
        now = asyncio.get_running_loop().time()
        expired = [(seq, waiter) for seq, waiter in inflight.items() if waiter.deadline <= now]
        for seq, waiter in expired:
            del inflight[seq]
        if inflight:
            self._arm_expiry(min(waiter.deadline for waiter in inflight.values()))
        for _seq, waiter in expired:
            if waiter.__class__ is _Request:
                if not waiter.future.done():
                    waiter.future.set_exception(TimeoutError("the SMSC did not answer in time"))
            elif self.on_expired is not None:
                self.on_expired(waiter)
        if expired:
            self._room_freed()

    # -- writing ----------------------------------------------------------------------------------
    def send(self, pdu: P.Pdu) -> None:
        if self.transport is None:
            return
        self._out.append(P.encode(pdu))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def send_bytes(self, data: bytes) -> None:
        """An already encoded PDU (an answer built by :func:`ack_bytes`)."""
        if self.transport is None:
            return
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def send_submit(self, waiter: Waiter, body: bytes, now: float) -> None:
        """A ``submit_sm`` whose body (everything after the header) is already encoded: the
        session only numbers it. Its answer goes to ``on_answer``, or ``on_expired`` after
        ``timeout`` seconds, or ``on_lost`` with the session. The caller checks :attr:`room`."""
        seq = self._next_seq
        self._next_seq = seq + 1 if seq < 0x7FFFFFFF else 1
        waiter.deadline = deadline = now + self.settings.timeout
        self.inflight[seq] = waiter
        out = self._out
        out.append(_pack_header(16 + len(body), _SUBMIT_SM, 0, seq))
        out.append(body)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        if self._expiry is None:
            self._arm_expiry(deadline)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._out and self.transport is not None:
            out, self._out = self._out, []
            self.transport.write(b"".join(out))
            self._last_io = asyncio.get_running_loop().time()

    async def request(self, pdu: P.Pdu) -> P.Pdu:
        """Send a request and return the SMSC's response. Waits for a slot in the window; raises
        TimeoutError when no answer comes within ``timeout`` and SessionLost when the session
        closes first."""
        loop = asyncio.get_running_loop()
        while self.transport is not None and len(self.inflight) >= self.settings.window:
            slot = loop.create_future()
            self._room_waiters.append(slot)
            try:
                await slot
            finally:
                self._room_waiters.remove(slot)
        if self.transport is None:
            raise SessionLost("the session is not connected")
        seq = self._next_seq
        self._next_seq = seq + 1 if seq < 0x7FFFFFFF else 1
        pdu.sequence_number = seq
        request = _Request(loop.create_future())
        request.deadline = deadline = loop.time() + self.settings.timeout
        self.inflight[seq] = request
        self.send(pdu)
        self._arm_expiry(deadline)
        try:
            return await request.future
        finally:
            if self.inflight.get(seq) is request:
                del self.inflight[seq]
                self._room_freed()
