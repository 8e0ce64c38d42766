"""End to end: ``smslab serve`` with the ``twilio`` platform and ``smslab carrier --twilio`` as two
processes on 127.0.0.1, both on virtual clocks. The gateway sends a task through the Messages
API, takes the carrier's signed status callbacks at ``/api/v1/platforms/twilio/receipts``, and
its counts equal the carrier's ground truth; a callback with a bad signature is refused 401."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlencode

import pytest

from smslab_twilio.platform import signature
from tests.pg_support import db_target, query, sim_env
from tests.procs import create_token, free_port
from tests.twilio_support import TwilioCarrier, account_sid, wait_for

SID, TOKEN = account_sid(42), "e2e-auth-token"
NUMBERS = [f"+8613900{i:06d}" for i in range(60)]
PROFILE = dict(seed=3, outcomes={"delivered": 0.7, "failed": 0.2, "missing": 0.1},
               receipt_delay={"kind": "uniform", "low": 1, "high": 60}, moderation={"review_seconds": 0})


class Gateway:
    """``smslab serve --clock virtual`` on a port chosen first: its public receipts URL is the
    platform's StatusCallback, so it must be known before the process starts."""

    def __init__(self, tmp, env: dict[str, str], clock: str = "virtual"):
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp, self.env, self.clock = tmp, env, clock
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.callback_url = f"{self.base}/api/v1/platforms/twilio/receipts"
        self.db = db_target(tmp, "gateway.db", session=True)  # module-scoped fixtures share one gateway
        self.token = create_token(self.db, "shop")
        self.start()

    def start(self) -> None:
        self.log = open(self.tmp / "gateway.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--db", self.db, "--clock", self.clock],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, **sim_env(self.db), **self.env, "SMSLAB_TWILIO_CALLBACK_URL": self.callback_url})
        wait_for(self._up, 30, what="smslab serve to answer /healthz")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def rows(self, task_id: int) -> list[tuple[str, str | None]]:
        """(number, platform_id) per number, from the gateway's database itself."""
        return query(self.db, "SELECT number, platform_id FROM messages WHERE task_id = ?", task_id)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"smslab serve exited with {self.proc.returncode}")
        try:
            urllib.request.urlopen(self.base + "/healthz", timeout=1)
            return True
        except OSError:
            return False

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        for k, v in {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **(headers or {})}.items():
            if v is not None:
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def ok(self, method: str, path: str, body=None):
        status, out = self.request(method, path, body)
        assert 200 <= status < 300, (status, out)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def pair(tmp_path):
    carrier = TwilioCarrier(tmp_path / "carrier", {SID: TOKEN})
    carrier.profile(**PROFILE)
    gateway = Gateway(tmp_path / "gateway", {"SMSLAB_TWILIO_ACCOUNT_SID": SID, "SMSLAB_TWILIO_AUTH_TOKEN": TOKEN,
                                             "SMSLAB_TWILIO_FROM": "+15005550006", "SMSLAB_TWILIO_BASE_URL": carrier.base})
    yield carrier, gateway
    gateway.stop()
    carrier.stop()


def settle_receipts(carrier, done, what: str) -> None:
    """Move the carrier's clock until ``done()``: past every receipt (delays up to 60 s), then
    past the carrier's retries (60, 300, 600 s) of any callback the gateway did not answer 2xx
    (it was down, or busy): a status callback reaches the gateway in the end, whatever happened."""
    for step in (61, 61, 301, 601):
        carrier.advance(step)
        carrier.settle(SID)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if done() and carrier.api("GET", f"/accounts/{SID}")[1]["outbox"]["open"] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_task_counts_equal_ground_truth(pair):
    carrier, gateway = pair
    platforms = {p["name"]: p for p in gateway.ok("GET", "/api/v1/platforms")["items"]}
    assert platforms["twilio"]["callback_url"] == gateway.callback_url
    audience = gateway.ok("POST", "/api/v1/audiences", {"name": "a", "numbers": NUMBERS})
    task = gateway.ok("POST", "/api/v1/tasks", {"name": "t", "platform": "twilio", "content": {"text": "Spring sale"},
                                                "audience_id": audience["id"], "signature": "Shop"})
    gateway.ok("POST", "/api/v1/clock/advance", {"seconds": 1})  # out of moderation
    wait_for(lambda: gateway.ok("GET", f"/api/v1/tasks/{task['id']}")["sent"] == len(NUMBERS), 30, what="the task sent")
    carrier.settle(SID)
    truth = carrier.ground_truth(SID)
    assert len(truth) == len(NUMBERS) and {item["to"] for item in truth} == set(NUMBERS)
    want = Counter(item["expected_result"] for item in truth)
    assert want["succeeded"] and want["failed"] and want["receipt_timeout"], want

    def counts():
        t = gateway.ok("GET", f"/api/v1/tasks/{task['id']}")
        return (t["succeeded"], t["failed"], t["pending"]) == (want["succeeded"], want["failed"], want["receipt_timeout"]) and t

    settle_receipts(carrier, counts, f"the task's counts to match {dict(want)}")
    # every callback (queued, sent, final) was taken by the gateway, signed right, once
    callbacks = carrier.journal(SID, "status_callback")
    taken = Counter((e["sid"], e["message_status"]) for e in callbacks if e["error"] is None)
    assert set(taken.values()) == {1} and len(taken) == 2 * len(NUMBERS) + want["succeeded"] + want["failed"], \
        Counter(e["message_status"] for e in callbacks)
    gateway.ok("POST", "/api/v1/clock/advance", {"seconds": 73 * 3600})  # the missing ones time out
    final = wait_for(lambda: (t := gateway.ok("GET", f"/api/v1/tasks/{task['id']}"))["pending"] == 0 and t, 20,
                     what="no pending message")
    assert (final["succeeded"], final["failed"]) == (want["succeeded"], want["failed"] + want["receipt_timeout"])


def test_bad_signature_is_refused(pair):
    carrier, gateway = pair
    params = [("AccountSid", SID), ("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered")]
    body = urlencode(params).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": None}
    good = signature(TOKEN, gateway.callback_url, params)
    for sig in (None, "", "AAAA", signature("another-token", gateway.callback_url, params),
                signature(TOKEN, gateway.callback_url + "?x=1", params)):
        status, _ = gateway.request("POST", "/api/v1/platforms/twilio/receipts", raw=body,
                                    headers={**form, "X-Twilio-Signature": sig})
        assert status == 401, sig
    status, out = gateway.request("POST", "/api/v1/platforms/twilio/receipts", raw=body,
                                  headers={**form, "X-Twilio-Signature": good})
    assert status == 200 and out == {"accepted": 1}  # an unknown sid: the gateway keeps it as unmatched
    queued = [("AccountSid", SID), ("MessageSid", "SM" + "2" * 32), ("MessageStatus", "queued")]
    status, out = gateway.request("POST", "/api/v1/platforms/twilio/receipts", raw=urlencode(queued).encode(),
                                  headers={**form, "X-Twilio-Signature": signature(TOKEN, gateway.callback_url, queued)})
    assert status == 200 and out == {"accepted": 0}


def test_gateway_killed_mid_send(tmp_path):
    """``kill -9`` of the gateway while it sends (wall clock; the account's throughput limit
    throttles it, so the send takes seconds): every number reaches the carrier, at most
    ``concurrency + 64`` twice (README, "What survives a crash"), and the counts follow the copy
    the gateway recorded."""
    numbers = [f"+8613700{i:06d}" for i in range(400)]
    carrier = TwilioCarrier(tmp_path / "carrier", {SID: TOKEN})
    gateway = None
    try:
        carrier.profile(**PROFILE)
        carrier.api("PATCH", f"/accounts/{SID}", {"throughput_limit": 80})
        gateway = Gateway(tmp_path / "gateway", {"SMSLAB_TWILIO_ACCOUNT_SID": SID, "SMSLAB_TWILIO_AUTH_TOKEN": TOKEN,
                                                 "SMSLAB_TWILIO_FROM": "+15005550006", "SMSLAB_TWILIO_BASE_URL": carrier.base,
                                                 "SMSLAB_DISPATCH_BATCH": "50"}, clock="wall")
        audience = gateway.ok("POST", "/api/v1/audiences", {"name": "a", "numbers": numbers})
        task = gateway.ok("POST", "/api/v1/tasks", {"name": "crash", "platform": "twilio", "content": {"text": "Code 1234"},
                                                    "audience_id": audience["id"], "signature": "Shop"})
        at_kill = wait_for(lambda: (t := gateway.ok("GET", f"/api/v1/tasks/{task['id']}"))["sent"] >= 100 and t, 60,
                           interval=0.01, what="the task to be under way")
        gateway.kill()
        assert at_kill["sent"] < len(numbers), "the task ended before the kill: the test proved nothing"
        gateway.start()
        wait_for(lambda: gateway.ok("GET", f"/api/v1/tasks/{task['id']}")["sent"] == len(numbers), 60, what="the task sent")
        carrier.settle(SID)
        truth = carrier.ground_truth(SID)
        copies = Counter(item["to"] for item in truth)
        assert set(copies) == set(numbers), "a number never reached the carrier"
        resent = len(truth) - len(numbers)
        assert resent <= 8 + 64, f"{resent} numbers were sent twice"
        throttled = [e for e in carrier.journal(SID, "messages.create") if e.get("code") == 20429]
        assert throttled, "the carrier never throttled: the test proved nothing about Throttled"
        by_sid = {item["sid"]: item for item in truth}
        rows = gateway.rows(task["id"])
        recorded = {pid for _, pid in rows}
        assert len(rows) == len(numbers) and recorded <= set(by_sid)
        want = Counter(by_sid[pid]["expected_result"] for pid in recorded)

        def counts():
            t = gateway.ok("GET", f"/api/v1/tasks/{task['id']}")
            return (t["succeeded"], t["failed"], t["pending"]) == (want["succeeded"], want["failed"], want["receipt_timeout"]) and t

        settle_receipts(carrier, counts, f"the task's counts to match {dict(want)}")
        print(f"gateway killed at {at_kill['sent']} sent; {resent} sent twice; {len(throttled)} throttled answers")
    finally:
        if gateway is not None:
            gateway.stop()
        carrier.stop()
