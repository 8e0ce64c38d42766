"""SMPP load with locust: ``SmppUser`` holds its own transceiver bind to an SMSC (``smslab carrier
--smpp-port``, or any SMSC), submits ``submit_sm`` with ``registered_delivery=1`` to distinct
destinations with up to ``--smpp-window`` of them unanswered, and acknowledges every
``deliver_sm`` it gets with ``deliver_sm_resp``. It fires locust request events with
``request_type="SMPP"``:

- ``bind_transceiver``: the bind, once per user (a refused bind is a failure);
- ``submit_sm``: from writing the PDU to its ``submit_sm_resp``; a non-zero command_status (or no
  answer within ``--resp-timeout``) is a failure named by its SMPP status;
- ``receipt``: from the ``submit_sm`` to the arrival of its receipt (``esm_class`` 0x04). A
  receipt whose ``stat`` is not ``DELIVRD`` is a failure (the carrier says the message was not
  delivered).

An SMSC sends an account's receipts round-robin over *all* its receiver binds, so a receipt often
arrives on another user's bind, or (distributed) another worker's. To time it anyway, the first
20 octets of each short message carry its submit time (``t`` + epoch milliseconds), which the
SMPP 3.4 Appendix B receipt text echoes (``text:t1732968000123 code``); receipts without that
text are timed from this process's own record of message ids when it has one. Receipts of
messages submitted before this process's test started (left queued by an earlier run) are
acknowledged and counted in the log, not in the statistics.

On stop each user stops submitting, waits for its window's responses and for receipts still on
their way (at most ``--receipt-drain`` seconds, ending after a quarter of a second without
one), then unbinds. ``--min-receipt-share`` (default 0: off) makes the run fail when the receipts seen are
fewer than that share of the accepted messages (1.0 against a ``perfect`` carrier; distributed,
leave a margin such as 0.99: the master keeps the workers' final report for only half a second
after it says quit, so the last events of a worker can miss its summary).

    smslab carrier --port 9090 --smpp-port 2775 --account bench:secret --profile perfect --db /tmp/c.db
    locust -f loadtests/locustfile_smpp.py --headless -u 4 -r 4 -t 30s \\
        --smpp-host 127.0.0.1 --smpp-port 2775 --system-id bench --password secret --smpp-window 10

The thresholds of ``locust_common.py`` apply (``--max-fail-ratio``, ``--max-p95-ms``, ...). Each
user is one bind: the carrier's accounts allow 10 binds unless their ``max_binds`` says more.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
import time

from locust import User, constant_throughput, events, task  # first: locust monkey-patches with gevent

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore, Semaphore
from locust.runners import WorkerRunner

from gateway.wire.smpp import pdu as P
from locust_common import log

STATE = {"started_at": time.time(), "stale_receipts": 0, "foreign_untimed": 0}
SENT_IDS: dict[str, float] = {}  # message id -> wall time of its submit_sm, for receipts without a timestamp
SENT_IDS_KEPT = 1_000_000
_TEXT_TIME = re.compile(rb"text:t(\d{13})")
_STAT = re.compile(rb"stat:(\S+)")
_ID = re.compile(rb"id:(\S+)")
_numbers = itertools.count(random.SystemRandom().randrange(10**9))


def next_destination() -> str:
    """A destination this process has not used yet (E.164 digits, outside the magic numbers)."""
    return f"8613{next(_numbers) % 10**9:09d}"


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    env = os.environ
    parser.add_argument("--smpp-host", default=env.get("SMSLAB_SMPP_HOST", "127.0.0.1"), help="the SMSC's host")
    parser.add_argument("--smpp-port", type=int, default=int(env.get("SMSLAB_SMPP_PORT", 2775)), help="the SMSC's SMPP port")
    parser.add_argument("--system-id", default=env.get("SMSLAB_SMPP_SYSTEM_ID", "bench"), help="the SMPP account")
    parser.add_argument("--password", default=env.get("SMSLAB_SMPP_PASSWORD", "secret"), help="its password",
                        include_in_web_ui=False)
    parser.add_argument("--smpp-window", type=int, default=10, help="unanswered submit_sm per user (default 10)")
    parser.add_argument("--submit-rate", type=float, default=0.0,
                        help="submit_sm per second per user (default 0: as fast as the window allows)")
    parser.add_argument("--resp-timeout", type=float, default=30.0, help="seconds to wait for a submit_sm_resp")
    parser.add_argument("--receipt-drain", type=float, default=3.0,
                        help="on stop, seconds a user waits at most for receipts still on their way")
    parser.add_argument("--min-receipt-share", type=float, default=0.0,
                        help="exit non-zero when receipts seen < this share of accepted submit_sm (default 0: off)")


@events.test_start.add_listener
def _on_test_start(environment, **_kw) -> None:
    STATE["started_at"] = time.time()


class SmppError(Exception):
    pass


class SmppClient:
    """One transceiver bind over a gevent socket: requests written under a lock, a reader
    greenlet that matches responses, acknowledges receipts and fires the request events."""

    def __init__(self, environment, host: str, port: int, window: int, resp_timeout: float):
        self.environment = environment
        self.fire = environment.events.request.fire
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.reader = P.PduReader()
        self.write_lock = Semaphore()
        self.window = BoundedSemaphore(window)
        self.resp_timeout = resp_timeout
        self.pending: dict[int, tuple[float, float, str]] = {}  # seq -> (perf counter, wall time, command)
        self.waiters: dict[int, AsyncResult] = {}
        self.seq = itertools.count(1)
        self.last_receipt = time.monotonic()
        self.closed = False
        self.reader_greenlet = gevent.spawn(self._read_loop)
        self.watchdog = gevent.spawn(self._expire_loop)

    # -- writing ----------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def call(self, pdu: P.Pdu, timeout: float) -> P.Pdu:
        """Send a request and wait for its response (bind, unbind)."""
        pdu.sequence_number = next(self.seq)
        waiter = self.waiters[pdu.sequence_number] = AsyncResult()
        self._write(P.encode(pdu))
        try:
            return waiter.get(timeout=timeout)
        finally:
            self.waiters.pop(pdu.sequence_number, None)

    def bind(self, system_id: str, password: str) -> None:
        t = time.perf_counter()
        exc = None
        try:
            resp = self.call(P.make_pdu(P.BIND_TRANSCEIVER, system_id=system_id, password=password, system_type="",
                                        interface_version=0x34), timeout=30)
            if resp.command_status:
                exc = SmppError(f"bind_transceiver refused: {P.status_name(resp.command_status)}")
        except gevent.Timeout:
            exc = SmppError("no bind_transceiver_resp within 30 s")
        self.fire(request_type="SMPP", name="bind_transceiver", response_time=(time.perf_counter() - t) * 1000,
                  response_length=0, exception=exc, context={})
        if exc is not None:
            raise exc

    def submit(self, destination: str) -> None:
        """Write one submit_sm once the window has room (its response is handled by the reader)."""
        if not self.window.acquire(timeout=self.resp_timeout + 5):
            raise SmppError("the window stayed full")
        wall = time.time()
        text = b"t%013d code 123456, valid 10 minutes" % int(wall * 1000)
        seq = next(self.seq)
        frame = P.encode(P.make_pdu(P.SUBMIT_SM, seq, source_addr_ton=5, source_addr="smslab", dest_addr_ton=1,
                                    dest_addr_npi=1, destination_addr=destination, registered_delivery=1,
                                    short_message=text))
        self.pending[seq] = (time.perf_counter(), wall, destination)
        try:
            self._write(frame)
        except OSError:
            self.pending.pop(seq, None)
            self.window.release()
            raise

    # -- reading ----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while not self.closed:
                data = self.sock.recv(65536)
                if not data:
                    break
                for frame in self.reader.feed(data):
                    self._take(P.decode(frame), len(frame))
        except (OSError, P.PduError) as error:
            if not self.closed:
                log.warning("SMPP bind: %s", error)
        finally:
            self._fail_pending("the connection closed")

    def _take(self, pdu: P.Pdu, size: int) -> None:
        command = pdu.command_id
        if command == P.SUBMIT_SM_RESP or (command == P.GENERIC_NACK and pdu.sequence_number in self.pending):
            sent = self.pending.pop(pdu.sequence_number, None)
            if sent is None:
                return
            self.window.release()
            exc = SmppError(P.status_name(pdu.command_status)) if pdu.command_status or command == P.GENERIC_NACK else None
            self.fire(request_type="SMPP", name="submit_sm", response_time=(time.perf_counter() - sent[0]) * 1000,
                      response_length=size, exception=exc, context={"destination": sent[2]})
            if exc is None:
                message_id = pdu.fields.get("message_id", "")
                if len(SENT_IDS) < SENT_IDS_KEPT:
                    SENT_IDS[message_id] = sent[1]
        elif command in (P.DELIVER_SM, P.DATA_SM):
            self._write(P.encode(P.make_resp(pdu, message_id="")))
            if (pdu.fields.get("esm_class", 0) & 0x3C) == 0x04 or command == P.DATA_SM:
                self._receipt(pdu, size)
        elif command == P.ENQUIRE_LINK:
            self._write(P.encode(P.make_resp(pdu)))
        elif command == P.UNBIND:
            self._write(P.encode(P.make_resp(pdu)))
        elif command & 0x80000000:
            waiter = self.waiters.get(pdu.sequence_number)
            if waiter is not None:
                waiter.set(pdu)

    def _receipt(self, pdu: P.Pdu, size: int) -> None:
        self.last_receipt = time.monotonic()
        now = time.time()
        text = pdu.fields.get("short_message") or pdu.tlvs.get("message_payload") or b""
        rid = pdu.tlvs.get("receipted_message_id")
        if rid is None:
            m = _ID.search(text)
            rid = m.group(1).decode("latin-1") if m else ""
        own = SENT_IDS.pop(rid, None)
        m = _TEXT_TIME.search(text)
        sent = int(m.group(1)) / 1000 if m else own
        if sent is None:
            STATE["foreign_untimed"] += 1  # another process's message, and its receipt carries no time
            self.fire(request_type="SMPP", name="receipt (untimed)", response_time=0, response_length=size,
                      exception=None, context={})
            return
        if sent < STATE["started_at"] - 1:
            STATE["stale_receipts"] += 1
            return
        state = pdu.tlvs.get("message_state")  # 2: DELIVERED (SMPP 3.4 section 5.2.28)
        stat = _STAT.search(text)
        if state is not None:
            exc = None if state == 2 else SmppError(f"not delivered: message_state {state}")
        elif stat is not None:
            exc = None if stat.group(1) == b"DELIVRD" else SmppError(f"not delivered: stat {stat.group(1).decode('latin-1')}")
        else:
            exc = None
        self.fire(request_type="SMPP", name="receipt", response_time=max(0.0, now - sent) * 1000, response_length=size,
                  exception=exc, context={})

    def _expire_loop(self) -> None:
        """submit_sm left unanswered past --resp-timeout are failures (and free the window)."""
        while not self.closed:
            gevent.sleep(1.0)
            limit = time.perf_counter() - self.resp_timeout
            for seq in [s for s, (t, *_) in self.pending.items() if t < limit]:
                sent = self.pending.pop(seq, None)
                if sent is not None:
                    self.window.release()
                    self.fire(request_type="SMPP", name="submit_sm", response_time=(time.perf_counter() - sent[0]) * 1000,
                              response_length=0, exception=SmppError(f"no submit_sm_resp within {self.resp_timeout:.0f} s"),
                              context={})

    def _fail_pending(self, why: str) -> None:
        for seq in list(self.pending):
            sent = self.pending.pop(seq, None)
            if sent is not None:
                self.window.release()
                if not self.closed:
                    self.fire(request_type="SMPP", name="submit_sm", response_time=(time.perf_counter() - sent[0]) * 1000,
                              response_length=0, exception=SmppError(why), context={})

    # -- stopping ---------------------------------------------------------------------------------
    def drain(self, seconds: float) -> None:
        """Wait for the window's responses, then for receipts still coming (quiet for 0.25 s)."""
        deadline = time.monotonic() + seconds
        while self.pending and time.monotonic() < deadline:
            gevent.sleep(0.05)
        while time.monotonic() < deadline and time.monotonic() - self.last_receipt < 0.25:
            gevent.sleep(0.05)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.call(P.make_pdu(P.UNBIND), timeout=2)
        except (gevent.Timeout, OSError):
            pass
        self.closed = True
        self.watchdog.kill(block=False)
        try:
            self.sock.close()
        finally:
            self.reader_greenlet.kill(block=False)


class SmppUser(User):
    """One transceiver bind; each task run writes one submit_sm (the window paces them)."""

    def wait_time(self):
        rate = self.environment.parsed_options.submit_rate
        if not rate:
            return 0
        if not hasattr(self, "_pacer"):
            self._pacer = constant_throughput(rate)
        return self._pacer(self)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.smpp = SmppClient(self.environment, opts.smpp_host, opts.smpp_port, opts.smpp_window, opts.resp_timeout)
        try:
            self.smpp.bind(opts.system_id, opts.password)
        except Exception:
            self.smpp.closed = True
            self.smpp.sock.close()
            raise

    @task
    def submit_sm(self) -> None:
        self.smpp.submit(next_destination())

    def on_stop(self) -> None:
        smpp = getattr(self, "smpp", None)
        if smpp is None or smpp.closed:
            return
        smpp.drain(self.environment.parsed_options.receipt_drain)
        smpp.close()


@events.quitting.add_listener
def _receipts_seen(environment, **_kw) -> None:
    if STATE["stale_receipts"] or STATE["foreign_untimed"]:
        log.info("SMPP: %d receipts of an earlier run acknowledged, %d receipts without a time",
                 STATE["stale_receipts"], STATE["foreign_untimed"])
    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the aggregated figures
    entries = environment.stats.entries
    submits = entries.get(("submit_sm", "SMPP"))
    accepted = submits.num_requests - submits.num_failures if submits else 0
    receipts = sum(e.num_requests for key, e in entries.items() if key in (("receipt", "SMPP"), ("receipt (untimed)", "SMPP")))
    log.info("SMPP: %d submit_sm accepted, %d receipts", accepted, receipts)
    share = environment.parsed_options.min_receipt_share
    if share and receipts < share * accepted:
        log.error("SMPP: %d receipts for %d accepted messages: below --min-receipt-share %s", receipts, accepted, share)
        environment.process_exit_code = 1

