"""The same-run baseline of ``loadtests.bench smpp``: a bare asyncio SMPP responder that does the
least an SMSC can do for a message with a receipt, and nothing else.

Any bind succeeds. Each ``submit_sm`` is decoded with the project's codec
(:mod:`gateway.wire.smpp.pdu`), answered with a ``submit_sm_resp`` carrying a decimal message id,
and followed at once by one ``deliver_sm`` receipt (``esm_class`` 0x04, SMPP 3.4 Appendix B text,
``receipted_message_id`` and ``message_state`` TLVs) encoded with the same codec; each
``deliver_sm_resp`` is decoded and counted. ``enquire_link`` and ``unbind`` are answered. No
accounts, no window, no decision, no database, no journal: what asyncio, the sockets and the
SMSC's four codec calls per message cost on this machine. ``--raw`` skips the codec too (headers
only, prebuilt bodies): the floor of asyncio and the sockets alone.

Like the SMSC's sessions it is an ``asyncio.Protocol`` and writes what one ``data_received``
produced in one ``writelines``.

    python -m loadtests.smpp_bare --port 2776 [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import struct
import sys
import time

from gateway.wire.smpp import pdu as P

_HEADER = struct.Struct(">IIII")
_head = _HEADER.unpack_from
_pack = _HEADER.pack

STATS = {"binds": 0, "submits": 0, "receipts_sent": 0, "receipts_acked": 0}


class _Dates:
    """``YYMMDDhhmm`` of now, formatted once per second."""

    second = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        t = int(time.time())
        if t != cls.second:
            cls.second, cls.text = t, time.strftime("%y%m%d%H%M", time.gmtime(t))
        return cls.text


class BareSmsc(asyncio.Protocol):
    next_id = 1

    def __init__(self, raw: bool = False):
        self.raw = raw
        self.reader = P.PduReader()
        self.transport: asyncio.Transport | None = None
        self.seq = 1

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except P.PduError as error:
            self.transport.write(P.encode(P.generic_nack(error.sequence_number, error.status)))
            self.transport.close()
            return
        out: list[bytes] = []
        take = self._raw if self.raw else self._codec
        for frame in frames:
            take(frame, out)
        if out and self.transport is not None:
            self.transport.writelines(out)

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = seq + 1 if seq < 0x7FFFFFFF else 1
        return seq

    # -- with the codec: decode every PDU in, encode every PDU out --------------------------------
    def _codec(self, frame: bytes, out: list[bytes]) -> None:
        try:
            pdu = P.decode(frame)
        except P.PduError as error:
            out.append(P.encode(P.generic_nack(error.sequence_number, error.status)))
            return
        command = pdu.command_id
        if command == P.SUBMIT_SM:
            number = BareSmsc.next_id
            BareSmsc.next_id += 1
            message_id = str(number)
            out.append(P.encode(P.make_resp(pdu, message_id=message_id)))
            fields = pdu.fields
            date = _Dates.now()
            text = (f"id:{message_id} sub:001 dlvrd:001 submit date:{date} done date:{date} stat:DELIVRD err:000 text:"
                    ).encode() + fields["short_message"][:20]
            receipt = P.make_pdu(
                P.DELIVER_SM, self._next_seq(), source_addr_ton=fields["dest_addr_ton"],
                source_addr_npi=fields["dest_addr_npi"], source_addr=fields["destination_addr"],
                dest_addr_ton=fields["source_addr_ton"], dest_addr_npi=fields["source_addr_npi"],
                destination_addr=fields["source_addr"], esm_class=0x04, short_message=text,
                receipted_message_id=message_id, message_state=2)
            out.append(P.encode(receipt))
            STATS["submits"] += 1
            STATS["receipts_sent"] += 1
        elif command == P.DELIVER_SM_RESP:
            STATS["receipts_acked"] += 1
        elif command in (P.BIND_TRANSCEIVER, P.BIND_TRANSMITTER, P.BIND_RECEIVER):
            STATS["binds"] += 1
            out.append(P.encode(P.make_resp(pdu, system_id="bare")))
        elif command == P.ENQUIRE_LINK:
            out.append(P.encode(P.make_resp(pdu)))
        elif command == P.UNBIND:
            out.append(P.encode(P.make_resp(pdu)))
            self.transport.writelines(out)
            out.clear()
            self.transport.close()
        elif not command & 0x80000000:
            out.append(P.encode(P.generic_nack(pdu.sequence_number, P.ESME_RINVCMDID)))

    # -- raw: headers only, prebuilt bodies -----------------------------------------------------
    _RECEIPT_BODY = P.encode(P.make_pdu(
        P.DELIVER_SM, 0, source_addr="8613000000000", destination_addr="smslab", esm_class=0x04,
        short_message=b"id:1 sub:001 dlvrd:001 submit date:0001010000 done date:0001010000 stat:DELIVRD err:000 text:",
        receipted_message_id="1", message_state=2))[16:]

    def _raw(self, frame: bytes, out: list[bytes]) -> None:
        _, command, _, seq = _head(frame)
        if command == P.SUBMIT_SM:
            number = BareSmsc.next_id
            BareSmsc.next_id += 1
            message_id = b"%d\0" % number
            out.append(_pack(16 + len(message_id), P.SUBMIT_SM_RESP, 0, seq) + message_id)
            body = self._RECEIPT_BODY
            out.append(_pack(16 + len(body), P.DELIVER_SM, 0, self._next_seq()) + body)
            STATS["submits"] += 1
            STATS["receipts_sent"] += 1
        elif command == P.DELIVER_SM_RESP:
            STATS["receipts_acked"] += 1
        elif command in (P.BIND_TRANSCEIVER, P.BIND_TRANSMITTER, P.BIND_RECEIVER):
            STATS["binds"] += 1
            out.append(_pack(21, command | 0x80000000, 0, seq) + b"bare\0")
        elif command == P.ENQUIRE_LINK:
            out.append(_pack(16, P.ENQUIRE_LINK_RESP, 0, seq))
        elif command == P.UNBIND:
            out.append(_pack(16, P.UNBIND_RESP, 0, seq))
            self.transport.writelines(out)
            out.clear()
            self.transport.close()
        elif not command & 0x80000000:
            out.append(_pack(16, P.GENERIC_NACK, P.ESME_RINVCMDID, seq))


async def serve(host: str, port: int, raw: bool = False) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BareSmsc(raw), host, port)
    print(f"bare SMPP responder on {host}:{port}{' (raw)' if raw else ''}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"bare SMPP responder: {STATS}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.smpp_bare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="headers only, prebuilt bodies: no codec")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
