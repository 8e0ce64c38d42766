"""Helpers for tests that run ``smslab carrier --smpp-port`` as a real process on 127.0.0.1 and
talk to it as a gateway would: a raw SMPP client on smslab's own codec (for exact statuses and
bytes) and the carrier's control API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.wire.smpp import pdu as P
from tests.procs import free_port

TOKEN = "carrier-test-token"


class Carrier:
    """A ``smslab carrier`` process with HTTP, SMPP and SMPP-over-TLS ports."""

    def __init__(self, tmp: Path, *extra: str, accounts: tuple[str, ...] = ("test:secret",), log_name: str = "carrier.log"):
        self.http_port, self.smpp_port, self.tls_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.db = tmp / "carrier.db"
        self.log_path = tmp / log_name
        args = [sys.executable, "-m", "gateway.cli", "carrier", "--port", str(self.http_port), "--smpp-port",
                str(self.smpp_port), "--smpp-tls-port", str(self.tls_port), "--db", str(self.db), "--token", TOKEN,
                "--clock", "virtual", "--clock-start", "1714557600"]
        for account in accounts:
            args += ["--account", account]
        self.args = [*args, *extra]
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ.copy())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                with socket.create_connection(("127.0.0.1", self.smpp_port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"smslab carrier exited: {self.log_path.read_text()[-2000:]}")
                time.sleep(0.05)
        raise RuntimeError("smslab carrier did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=15)
        self.log.close()

    def api(self, method: str, path: str, body=None, token: str | None = TOKEN):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def account(self, name: str, password: str = "pw", **fields) -> dict:
        status, body = self.api("PUT", f"/accounts/{name}", {"password": password, **fields})
        assert status in (200, 201), body
        return body

    def advance(self, seconds: float) -> None:
        status, body = self.api("POST", "/clock/advance", {"seconds": seconds})
        assert status == 200, body

    def profile(self, **fields) -> dict:
        status, body = self.api("PUT", "/profile", fields)
        assert status == 200, body
        return body

    def ground_truth(self, account: str) -> list[dict]:
        items, cursor = [], None
        while True:
            status, page = self.api("GET", f"/ground-truth?account={account}&limit=1000" + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200, page
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


class Esme:
    """A blocking SMPP client on smslab's codec: send a PDU, read PDUs, see exactly what came."""

    def __init__(self, port: int, timeout: float = 5.0, tls: bool = False):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
        self.sock = sock
        self.reader = P.PduReader()
        self.frames: list[bytes] = []
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, command, **values) -> int:
        self.seq += 1
        self.sock.sendall(P.encode(P.make_pdu(command, self.seq, **values)))
        return self.seq

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 5.0) -> P.Pdu | None:
        """The next PDU, or None when the SMSC closed the connection or sent nothing in time."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            if not data:
                return None
            self.frames += self.reader.feed(data)
        return P.decode(self.frames.pop(0))

    def expect(self, command_id: int, timeout: float = 5.0) -> P.Pdu:
        """The next PDU of this command, answering receipts and enquire_links that come first."""
        deadline = time.monotonic() + timeout
        while True:
            pdu = self.read(max(deadline - time.monotonic(), 0.01))
            assert pdu is not None, f"no {P.COMMAND_NAMES[command_id]} from the SMSC"
            if pdu.command_id == command_id:
                return pdu
            self.answer(pdu)

    def answer(self, pdu: P.Pdu) -> None:
        if pdu.command_id in (P.DELIVER_SM, P.DATA_SM, P.ENQUIRE_LINK):
            self.sock.sendall(P.encode(P.make_resp(pdu, **({"message_id": ""} if pdu.command_id != P.ENQUIRE_LINK else {}))))

    def bind(self, system_id: str = "test", password: str = "secret", mode: str = "bind_transceiver") -> P.Pdu:
        self.send(mode, system_id=system_id, password=password, interface_version=0x34)
        return self.expect(P.COMMAND_IDS[mode + "_resp"])

    def submit(self, destination: str, text: bytes = b"hello", registered_delivery: int = 1, **values) -> P.Pdu:
        self.send("submit_sm", source_addr="Shop", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
                  destination_addr=destination, short_message=text, registered_delivery=registered_delivery, **values)
        return self.expect(P.SUBMIT_SM_RESP)

    def receipts(self, count: int, timeout: float = 10.0, ack: bool = True) -> list[P.Pdu]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            pdu = self.read(max(deadline - time.monotonic(), 0.01))
            if pdu is None:
                break
            if pdu.command_id in (P.DELIVER_SM, P.DATA_SM):
                out.append(pdu)
                if ack:
                    self.answer(pdu)
            elif pdu.command_id == P.ENQUIRE_LINK:
                self.answer(pdu)
        return out
