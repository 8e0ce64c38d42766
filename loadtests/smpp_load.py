"""A lean SMPP 3.4 load client: ``B`` transceiver binds, a window of ``W`` unanswered
``submit_sm`` per bind, ``N`` messages to distinct destinations, each with
``registered_delivery=1``, and every ``deliver_sm`` acknowledged with ``deliver_sm_resp``.

It is built so the load generator is not what limits the figure:

- each bind is an ``asyncio.Protocol``: a PDU costs a callback, never a coroutine;
- every PDU written during one ``data_received`` (the window refill, the receipts'
  ``deliver_sm_resp``) leaves in one ``writelines``;
- a ``submit_sm`` is a prebuilt frame: the header is one ``struct.pack`` and the body one ``%``
  of a template the codec (:mod:`gateway.wire.smpp.pdu`) encoded once and decodes back at start;
- incoming PDUs are read by their header only; a receipt is told from a mobile-originated
  message by its ``esm_class`` (three ``bytes.index`` calls). ``verify=True`` decodes every
  receipt with the codec instead and counts distinct ``receipted_message_id`` s (slower).

Timing starts once every bind is bound (the SMSC's password check is not in the figure) and
ends when ``N`` responses and a receipt for every accepted message have arrived, bounded by
``timeout``. Submit latency is from the moment a ``submit_sm`` is queued for writing to the
arrival of its ``submit_sm_resp``. The client's own CPU time (``time.process_time``) over the
same window is returned so a reader can see whether the client was the bottleneck.

    python -m loadtests.smpp_load --port 2775 --system-id bench --password secret \\
        --messages 100000 --binds 4 --window 100

:func:`run` is the same as a coroutine returning a dict of figures (``loadtests.bench smpp``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
import time
from array import array
from typing import Any, Callable

from gateway.wire.smpp import pdu as P

_HEADER = struct.Struct(">IIII")
_head = _HEADER.unpack_from
_pack = _HEADER.pack
_clock = time.perf_counter

TEXT = b"Your code is 123456. It expires in 10 minutes."


def destination(i: int) -> str:
    """The i-th destination: distinct, E.164 digits without '+', outside the magic-number block."""
    return f"8613{i:09d}"


class SubmitTemplate:
    """``frame(seq, i)``: the wire bytes of a submit_sm to :func:`destination` ``(i)``."""

    def __init__(self, source: str = "smslab", text: bytes = TEXT, registered_delivery: int = 1):
        pdu = P.make_pdu(P.SUBMIT_SM, 0, source_addr_ton=5, source_addr_npi=0, source_addr=source,
                         dest_addr_ton=1, dest_addr_npi=1, destination_addr=destination(0),
                         registered_delivery=registered_delivery, short_message=text)
        raw = P.encode(pdu)
        body = raw[16:]
        dest = destination(0).encode() + b"\0"
        at = body.index(dest)
        self.length = len(raw)
        self.body = body[:at].replace(b"%", b"%%") + b"8613%09d\0" + body[at + len(dest):].replace(b"%", b"%%")
        check = P.decode(self.frame(7, 123))  # the spliced frame is what the codec would write
        assert check.sequence_number == 7 and check.fields["destination_addr"] == destination(123), check
        assert check.fields["registered_delivery"] == registered_delivery and check.fields["short_message"] == text

    def frame(self, seq: int, i: int) -> bytes:
        return _pack(self.length, P.SUBMIT_SM, 0, seq) + self.body % i


def _esm_class(frame: bytes) -> int:
    """esm_class of a deliver_sm frame: past service_type, source and destination addresses."""
    n = frame.index(0, 16)
    n = frame.index(0, n + 3)
    n = frame.index(0, n + 3)
    return frame[n + 1]


class LoadError(RuntimeError):
    pass


class _Load:
    """The shared state of one run: the message counter, the counts and the latencies."""

    def __init__(self, messages: int, window: int, first: int, verify: bool, template: SubmitTemplate):
        self.loop = asyncio.get_running_loop()
        self.messages = messages
        self.window = window
        self.first = first
        self.verify = verify
        self.template = template
        self.next = 0  # messages queued so far, over all binds
        self.submitting = False
        self.resps = 0
        self.ok = 0
        self.statuses: dict[str, int] = {}
        self.receipts = 0
        self.receipt_ids: set[str] = set()
        self.duplicates = 0
        self.other_deliver = 0  # deliver_sm/data_sm that are not receipts (mobile-originated)
        self.nacks = 0
        self.latencies = array("d")
        self.t_resps: float | None = None
        self.t_done: float | None = None
        self.done = self.loop.create_future()
        self.binds: list[_Bind] = []

    def check_done(self) -> None:
        if self.t_resps is None and self.resps >= self.messages:
            self.t_resps = _clock()
        if self.resps >= self.messages and self.receipts >= self.ok and not self.done.done():
            self.t_done = _clock()
            self.done.set_result(None)

    def start(self) -> None:
        self.submitting = True
        for bind in self.binds:
            out: list[bytes] = []
            bind.fill(out)
            if out:
                bind.transport.writelines(out)
        self.check_done()


class _Bind(asyncio.Protocol):
    def __init__(self, load: _Load, system_id: str, password: str):
        self.load = load
        self.system_id, self.password = system_id, password
        self.reader = P.PduReader()
        self.transport: asyncio.Transport | None = None
        self.bound = load.loop.create_future()
        self.unbound = load.loop.create_future()
        self.closed = load.loop.create_future()
        self.inflight = 0
        self.sent_at: dict[int, float] = {}
        self.seq = 2  # 1 is the bind

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(P.encode(P.make_pdu(P.BIND_TRANSCEIVER, 1, system_id=self.system_id, password=self.password,
                                            system_type="", interface_version=0x34)))

    def connection_lost(self, exc) -> None:
        self.transport = None
        if not self.bound.done():
            self.bound.set_exception(LoadError(f"the connection closed before the bind was answered ({exc})"))
        for fut in (self.unbound, self.closed):
            if not fut.done():
                fut.set_result(None)
        load = self.load
        if not load.done.done() and self.bound.done() and load.submitting:
            load.done.set_exception(LoadError(f"a bind was closed by the SMSC during the run ({exc})"))

    def fill(self, out: list[bytes]) -> None:
        load = self.load
        take = min(load.window - self.inflight, load.messages - load.next)
        if take <= 0:
            return
        now = _clock()
        frame = load.template.frame
        sent_at = self.sent_at
        seq, i = self.seq, load.first + load.next
        for k in range(take):
            out.append(frame(seq + k, i + k))
            sent_at[seq + k] = now
        self.seq = seq + take
        load.next += take
        self.inflight += take

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except P.PduError as error:
            if not self.load.done.done():
                self.load.done.set_exception(LoadError(f"bad frame from the SMSC: {error}"))
            self.transport.abort()
            return
        load = self.load
        now = _clock()
        out: list[bytes] = []
        sent_at = self.sent_at
        lat = load.latencies.append
        for frame in frames:
            _, command, status, seq = _head(frame)
            if command == P.SUBMIT_SM_RESP:
                t = sent_at.pop(seq, None)
                if t is None:
                    continue
                lat(now - t)
                self.inflight -= 1
                load.resps += 1
                if status == 0:
                    load.ok += 1
                else:
                    name = P.status_name(status)
                    load.statuses[name] = load.statuses.get(name, 0) + 1
            elif command == P.DELIVER_SM or command == P.DATA_SM:
                out.append(_pack(17, command | 0x80000000, 0, seq) + b"\0")
                if load.verify:
                    self._verify(frame)
                elif command == P.DATA_SM or (_esm_class(frame) & 0x3C) == 0x04:
                    load.receipts += 1
                else:
                    load.other_deliver += 1
            elif command == P.ENQUIRE_LINK:
                out.append(_pack(16, P.ENQUIRE_LINK_RESP, 0, seq))
            elif command == P.BIND_TRANSCEIVER_RESP:
                if status:
                    self.bound.set_exception(LoadError(f"bind_transceiver refused: {P.status_name(status)}"))
                else:
                    self.bound.set_result(None)
            elif command == P.UNBIND:
                out.append(_pack(16, P.UNBIND_RESP, 0, seq))
            elif command == P.UNBIND_RESP:
                if not self.unbound.done():
                    self.unbound.set_result(None)
            elif command == P.GENERIC_NACK:
                load.nacks += 1
                if sent_at.pop(seq, None) is not None:
                    self.inflight -= 1
                    load.resps += 1
                    name = f"generic_nack {P.status_name(status)}"
                    load.statuses[name] = load.statuses.get(name, 0) + 1
            elif not command & 0x80000000:  # a request we do not handle: say so, as an ESME must
                out.append(_pack(16, P.GENERIC_NACK, P.ESME_RINVCMDID, seq))
        if load.submitting:
            self.fill(out)
        if out and self.transport is not None:
            self.transport.writelines(out)
        load.check_done()

    def _verify(self, frame: bytes) -> None:
        load = self.load
        pdu = P.decode(frame)
        if not ((pdu.fields.get("esm_class", 0) & 0x3C) == 0x04 or pdu.command_id == P.DATA_SM):
            load.other_deliver += 1
            return
        rid = pdu.tlvs.get("receipted_message_id")
        if rid is None:  # no TLV: the id is in the text (SMPP 3.4 Appendix B)
            text = pdu.fields.get("short_message", b"")
            rid = text[3:text.find(b" ")].decode("latin-1") if text.startswith(b"id:") else text.decode("latin-1")
        if rid in load.receipt_ids:
            load.duplicates += 1
            return
        load.receipt_ids.add(rid)
        load.receipts += 1


def _percentile(sorted_xs, q: float) -> float:
    if not sorted_xs:
        return float("nan")
    return sorted_xs[min(len(sorted_xs) - 1, int(q * len(sorted_xs)))]


async def run(host: str, port: int, system_id: str, password: str, *, messages: int, binds: int = 4, window: int = 100,
              first: int = 0, timeout: float = 600.0, verify: bool = False,
              on_start: Callable[[], Any] | None = None, on_done: Callable[[], Any] | None = None) -> dict:
    """Run the load once; returns its figures (see the module docstring). ``on_start`` is called
    once every bind is bound, just before the first submit_sm; ``on_done`` as soon as the last
    response and receipt arrived (before the unbinds). Raises LoadError when a bind fails."""
    if messages < 1 or binds < 1 or window < 1:
        raise ValueError("messages, binds and window must be at least 1")
    load = _Load(messages, window, first, verify, SubmitTemplate())
    loop = load.loop
    for _ in range(binds):
        _, bind = await loop.create_connection(lambda: _Bind(load, system_id, password), host, port)
        load.binds.append(bind)
    try:
        await asyncio.wait_for(asyncio.gather(*(b.bound for b in load.binds)), 30)
        if on_start is not None:
            on_start()
        cpu0, t0 = time.process_time(), _clock()
        load.start()
        complete = True
        try:
            await asyncio.wait_for(asyncio.shield(load.done), timeout)
        except asyncio.TimeoutError:
            complete = False
        t1 = load.t_done or _clock()
        cpu1 = time.process_time()
        if on_done is not None:
            on_done()
    finally:
        for bind in load.binds:  # unbind politely, then close
            bound = bind.bound
            if bind.transport is not None and bound.done() and not bound.cancelled() and bound.exception() is None:
                bind.transport.write(P.encode(P.make_pdu(P.UNBIND, 0x7FFFFFFF)))
        await asyncio.wait([asyncio.ensure_future(asyncio.shield(b.unbound)) for b in load.binds], timeout=2)
        for bind in load.binds:
            if bind.transport is not None:
                bind.transport.close()
        await asyncio.wait([asyncio.ensure_future(asyncio.shield(b.closed)) for b in load.binds], timeout=2)
    elapsed = t1 - t0
    lat = sorted(load.latencies)
    return {
        "messages": messages, "binds": binds, "window": window, "complete": complete,
        "submitted": load.next, "responses": load.resps, "accepted": load.ok, "refused": dict(load.statuses),
        "receipts": load.receipts, "duplicate_receipts": load.duplicates, "other_deliver_sm": load.other_deliver,
        "generic_nacks": load.nacks,
        "elapsed_s": elapsed, "messages_per_s": load.ok / elapsed if elapsed > 0 else float("nan"),
        "submit_phase_s": (load.t_resps or t1) - t0,
        "latency_ms": {q: _percentile(lat, p) * 1000 for q, p in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))},
        "client_cpu_s": cpu1 - cpu0,
        "client_cpu_us_per_message": (cpu1 - cpu0) * 1e6 / max(1, load.ok),
        "client_cpu_share": (cpu1 - cpu0) / elapsed if elapsed > 0 else float("nan"),
    }


def summary(r: dict) -> str:
    lat = r["latency_ms"]
    lines = [
        f"{r['accepted']:,} of {r['messages']:,} messages accepted over {r['binds']} binds × window {r['window']}, "
        f"{r['receipts']:,} receipts acknowledged{'' if r['complete'] else ' (TIMED OUT)'}",
        f"{r['messages_per_s']:,.0f} messages/s with receipts ({r['elapsed_s']:.2f} s; submits answered in {r['submit_phase_s']:.2f} s)",
        f"submit latency p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms",
        f"client CPU {r['client_cpu_us_per_message']:.1f} µs/message, {100 * r['client_cpu_share']:.0f}% of one core",
    ]
    if r["refused"]:
        lines.append(f"refused: {r['refused']}")
    if r["duplicate_receipts"] or r["other_deliver_sm"]:
        lines.append(f"duplicate receipts {r['duplicate_receipts']}, other deliver_sm {r['other_deliver_sm']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.smpp_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the SMSC's SMPP port")
    p.add_argument("--system-id", default="bench")
    p.add_argument("--password", default="secret")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--binds", type=int, default=4)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--first", type=int, default=0, help="index of the first destination (runs after each other can use fresh numbers)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--verify", action="store_true", help="decode every receipt and count distinct receipted ids (slower)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.host, args.port, args.system_id, args.password, messages=args.messages, binds=args.binds,
                             window=args.window, first=args.first, timeout=args.timeout, verify=args.verify))
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
