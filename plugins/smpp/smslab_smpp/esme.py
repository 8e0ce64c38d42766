"""One SMPP session to the SMSC, kept up: connect (TLS for ``smpps``), bind, a window of
unanswered requests, ``enquire_link`` when quiet (and answering the SMSC's), and on any loss a
reconnect after an exponential backoff with jitter (so a hundred gateways do not reconnect in
step after an SMSC restart).

Requests wait for a free slot in the window; a response resolves its request's future. What
the SMSC sends on its own (receipts and replies in ``deliver_sm``/``data_sm``) goes to the
platform's handler, which answers it when it is safely stored.
"""

from __future__ import annotations

import asyncio
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


class SessionLost(ConnectionError):
    """The session closed while a request waited for its answer (it may or may not have arrived)."""


class EsmeSession(asyncio.Protocol):
    def __init__(self, settings: "Settings", mode: str, index: int, on_request: Callable[["EsmeSession", P.Pdu], Any],
                 on_state: Callable[[], None]):
        self.settings = settings
        self.mode = mode  # trx, tx or rx
        self.index = index
        self.on_request = on_request
        self.on_state = on_state
        self.transport: asyncio.Transport | None = None
        self.state = "closed"  # closed -> connecting -> bound
        self.reader = P.PduReader()
        self.inflight: dict[int, asyncio.Future] = {}
        self.window = asyncio.Semaphore(settings.window)
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
        waiting, self.inflight = self.inflight, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(SessionLost("the session closed before the SMSC answered"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
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
        for frame in frames:
            try:
                pdu = P.decode(frame)
            except P.PduError as error:
                log.warning("%s session %d: %s", self.settings.name, self.index, error)
                if error.command_id and not error.command_id & 0x80000000:
                    self.send(P.generic_nack(error.sequence_number, error.status))
                continue
            if pdu.command_id & 0x80000000:
                future = self.inflight.pop(pdu.sequence_number, None)
                if future is not None and not future.done():
                    future.set_result(pdu)
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

    # -- writing ----------------------------------------------------------------------------------
    def send(self, pdu: P.Pdu) -> None:
        if self.transport is None:
            return
        self._out.append(P.encode(pdu))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._out and self.transport is not None:
            out, self._out = self._out, []
            self.transport.writelines(out)
            self._last_io = asyncio.get_running_loop().time()

    async def request(self, pdu: P.Pdu) -> P.Pdu:
        """Send a request and return the SMSC's response. Waits for a slot in the window; raises
        TimeoutError when no answer comes within ``timeout`` and SessionLost when the session
        closes first."""
        async with self.window:
            if self.transport is None:
                raise SessionLost("the session is not connected")
            seq = self._next_seq
            self._next_seq = seq + 1 if seq < 0x7FFFFFFF else 1
            pdu.sequence_number = seq
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self.inflight[seq] = future
            self.send(pdu)
            # one timer per request rather than asyncio.wait_for, which wraps the future in a
            # task of its own: this runs once per part at thousands of parts a second
            timer = loop.call_later(self.settings.timeout, _expire, future)
            try:
                return await future
            finally:
                timer.cancel()
                self.inflight.pop(seq, None)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("the SMSC did not answer in time"))
