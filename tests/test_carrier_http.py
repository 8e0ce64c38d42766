"""The carrier on its own (``smslab carrier`` / ``python -m simulator.server``) and the HTTP
platform plugin (``plugins/http``, distribution ``smslab-http``).

Two kinds of tests:
- in-process tests of the carrier server (idempotency, decisions equal to the in-process
  carrier's, profile control, the virtual clock, the webhook retry schedule); they need only smslab;
- an end-to-end test that runs the gateway (``smslab serve``) and the carrier as two real
  processes on 127.0.0.1: a task on platform ``http`` completes, its counts equal the carrier's
  ground truth, and forged webhooks are refused with 401 and change nothing. These need the
  plugin installed: ``pip install --no-deps --no-build-isolation -e plugins/http``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.ports import free_port
from gateway.wire import webhooks
from simulator import profile as profiles
from simulator.model import decide
from simulator.server import CarrierServer, create_app

HOST = "127.0.0.1"
SECRET = "test-secret-1f2e3d"


def _plugin_installed() -> bool:
    return any(ep.name == "http" for ep in entry_points(group="smslab"))


needs_plugin = pytest.mark.skipif(
    not _plugin_installed(),
    reason="the smslab-http plugin is not installed: pip install --no-deps --no-build-isolation -e plugins/http",
)


FAST = {
    "seed": 7,
    "outcomes": {"delivered": 0.7, "failed": 0.3, "missing": 0.0},
    "failure_codes": {"UNDELIV": 3, "EXPIRED": 1},
    "receipt_delay": {"kind": "fixed", "seconds": 0.2},
    "moderation": {"banned_words": ["lottery"], "review_seconds": 0},
    "duplicate_rate": 0.2,
    "reorder": True,
    "part_policy": "all",
}


# -- in-process: the carrier server -----------------------------------------------------------------
@asynccontextmanager
async def running(app: web.Application):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


class Receiver:
    """A webhook endpoint that fails its first ``fail`` requests with 503, then verifies and keeps."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.calls = 0
        self.receipts: list = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.calls <= self.fail:
            return web.json_response({"error": {"code": "down"}}, status=503)
        webhooks.verify(SECRET, dict(request.headers), body)
        self.receipts += webhooks.decode_receipts(body, time.time())
        return web.json_response({"accepted": True})


async def _post(session, url, payload, method="POST"):
    async with session.request(method, url, json=payload) as resp:
        return resp.status, await resp.json()


async def _until(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False


def _messages(task_id, n, parts=1):
    return [{"key": f"{task_id}-{i}", "number": f"+86138001{i:05d}", "text": "hello", "parts": parts, "task_id": task_id}
            for i in range(n)]


async def test_submit_is_idempotent_and_decides_like_the_in_process_carrier(tmp_path):
    profile = profiles.from_builtins({**FAST, "receipt_delay": {"kind": "lognormal", "median": 5, "sigma": 1}})
    carrier = CarrierServer(str(tmp_path / "c.db"), clock="virtual", profile=profile)
    async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
        msgs = _messages(9, 40, parts=2)
        status, first = await _post(s, f"{url}/submit", {"messages": msgs[:25]})
        assert status == 200
        status, again = await _post(s, f"{url}/submit", msgs)  # a bare list; 25 of them already known
        assert status == 200
        ids = {r["key"]: r["platform_id"] for r in again["results"]}
        assert all(ids[r["key"]] == r["platform_id"] for r in first["results"])
        assert len(set(ids.values())) == 40
        async with s.get(f"{url}/ground-truth/summary", params={"task_id": "9"}) as resp:
            summary = await resp.json()
        assert summary["messages"] == 40  # nothing decided twice
        items, cursor, pages = [], None, 0
        while pages < 20:
            params = {"task_id": "9", "limit": "15", **({"cursor": cursor} if cursor else {})}
            async with s.get(f"{url}/ground-truth", params=params) as resp:
                page = await resp.json()
            items += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(items) == 40 and pages == 3
        for item in items:
            d = decide(profile, f"9:{item['number']}", 2)
            assert item["outcome"] == d.outcome and item["code"] == d.code
            assert sorted((r["part"], r["status"], r["code"], r["duplicate"]) for r in item["receipts"]) == sorted(
                (p.part, p.status, p.code, p.duplicate) for p in d.receipts)
        async with s.get(f"{url}/messages/{items[0]['platform_id']}") as resp:
            assert resp.status == 200
            assert (await resp.json())["number"] == items[0]["number"]
        async with s.get(f"{url}/messages/nope") as resp:
            assert resp.status == 404
        status, err = await _post(s, f"{url}/submit", {"messages": [{"key": "x", "number": 5}]})
        assert status == 400 and "number" in err["error"]["message"]


async def test_magic_numbers_outages_and_swallowed_receipts(tmp_path):
    profile = profiles.from_builtins({**FAST, "outages": [{"start": 100, "end": 200, "kind": "submit"},
                                                          {"start": 0, "end": 50, "kind": "receipts"}]})
    carrier = CarrierServer(str(tmp_path / "c.db"), clock="virtual", profile=profile)
    async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
        batch = [{"key": "5-1", "number": "+15005550001", "parts": 1, "task_id": 5},  # refused (Twilio 21211)
                 {"key": "5-2", "number": "+15005550010", "parts": 1, "task_id": 5},  # fails with UNDELIV
                 {"key": "5-3", "number": "not a number", "parts": 1, "task_id": 5}]
        status, body = await _post(s, f"{url}/submit", {"messages": batch})
        assert status == 200
        r = {x["key"]: x for x in body["results"]}
        assert r["5-1"]["platform_id"] is None and r["5-1"]["error_code"] == "21211"
        assert r["5-2"]["platform_id"] == "cr-5-2"
        assert r["5-3"]["error_code"] == "INVALID_NUMBER"
        status, again = await _post(s, f"{url}/submit", {"messages": batch[:1]})
        assert again["results"][0]["error_code"] == "21211"  # the same refusal, idempotently
        async with s.get(f"{url}/ground-truth", params={"task_id": "5"}) as resp:
            items = {i["key"]: i for i in (await resp.json())["items"]}
        assert items["5-1"]["outcome"] == "refused" and items["5-1"]["expected_result"] == "refused"
        failed = items["5-2"]
        assert failed["outcome"] == "failed" and failed["rule"] == "number:+15005550010"
        # its receipt fell due inside the receipts outage (0-50 s): planned, swallowed, never pushed
        assert failed["receipts"] and all(x["delivery"] == "swallowed" for x in failed["receipts"])
        assert failed["expected_result"] == "receipt_timeout"
        await _post(s, f"{url}/clock/advance", {"seconds": 150})
        async with s.post(f"{url}/submit", json={"messages": _messages(6, 1)}) as resp:
            assert resp.status == 503 and (await resp.json())["error"]["code"] == "outage"
        await _post(s, f"{url}/clock/advance", {"seconds": 100})
        status, _ = await _post(s, f"{url}/submit", {"messages": _messages(6, 1)})
        assert status == 200


async def test_profile_control_and_clock(tmp_path):
    carrier = CarrierServer(str(tmp_path / "c.db"), clock="wall")
    async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
        status, body = await _post(s, f"{url}/profile", FAST, method="PUT")
        assert status == 200 and body["receipt_delay"] == {"kind": "fixed", "seconds": 0.2}
        status, body = await _post(s, f"{url}/profile", {"outcomes": {"missing": 1.0}}, method="PATCH")
        assert status == 200 and body["outcomes"] == {"delivered": 0.7, "failed": 0.3, "missing": 1.0}
        status, body = await _post(s, f"{url}/profile", {"duplicate_rate": 3}, method="PATCH")
        assert status == 400 and "duplicate_rate" in body["error"]["message"]
        status, body = await _post(s, f"{url}/presets/perfect", {})
        assert status == 200
        status, body = await _post(s, f"{url}/presets/nope", {})
        assert status == 404
        status, body = await _post(s, f"{url}/clock/advance", {"seconds": 60})
        assert status == 409  # the wall clock cannot be moved
        status, body = await _post(s, f"{url}/moderate", {"text": "Win the LOTTERY"})
        assert status == 200 and body["reasons"]


async def test_throughput_limit_answers_429_with_retry_after(tmp_path):
    profile = profiles.from_builtins({**FAST, "throughput_limit": 5})
    carrier = CarrierServer(str(tmp_path / "c.db"), profile=profile)
    async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
        status, _ = await _post(s, f"{url}/submit", {"messages": _messages(1, 20)})
        assert status == 200  # the bucket was not empty: the batch goes, the bucket is in debt
        async with s.post(f"{url}/submit", json={"messages": _messages(2, 1)}) as resp:
            assert resp.status == 429
            assert float(resp.headers["Retry-After"]) > 0


async def test_webhooks_are_signed_batched_and_retried_on_the_carriers_clock(tmp_path):
    receiver = Receiver(fail=2)
    async with running(receiver.app) as hook_url:
        profile = profiles.from_builtins({**FAST, "receipt_delay": {"kind": "fixed", "seconds": 30}, "reorder": False,
                                          "duplicate_rate": 0})
        carrier = CarrierServer(str(tmp_path / "c.db"), clock="virtual", profile=profile,
                                callback=f"{hook_url}/hook", secret=SECRET, tick=0.01)
        async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
            status, _ = await _post(s, f"{url}/submit", {"messages": _messages(3, 10)})
            assert status == 200
            await asyncio.sleep(0.1)
            assert receiver.calls == 0  # nothing is due before 30 s of the carrier's clock
            await _post(s, f"{url}/clock/advance", {"seconds": 31})
            assert await _until(lambda: _true(receiver.calls == 1))
            await asyncio.sleep(0.1)
            assert receiver.calls == 1  # the retry waits 60 s of the carrier's clock
            async with s.get(f"{url}/ground-truth/summary", params={"task_id": "3"}) as resp:
                summary = await resp.json()
            assert summary["receipts"]["sent"] == 0 and summary["receipts"]["pending"] == summary["receipts"]["planned"]
            await _post(s, f"{url}/clock/advance", {"seconds": 59})
            await asyncio.sleep(0.1)
            assert receiver.calls == 1
            await _post(s, f"{url}/clock/advance", {"seconds": 1})
            assert await _until(lambda: _true(receiver.calls == 2))  # second failure: next in 300 s
            await _post(s, f"{url}/clock/advance", {"seconds": 300})
            assert await _until(lambda: _true(receiver.calls == 3))

            async def all_sent():  # the carrier records the delivery once the receiver's answer is in
                async with s.get(f"{url}/ground-truth/summary", params={"task_id": "3"}) as resp:
                    receipts = (await resp.json())["receipts"]
                return receipts["sent"] == receipts["planned"]

            assert await _until(all_sent)
            async with s.get(f"{url}/ground-truth/summary", params={"task_id": "3"}) as resp:
                summary = await resp.json()
            assert summary["receipts"]["sent"] == summary["receipts"]["planned"] == len(receiver.receipts)
            async with s.get(f"{url}/ground-truth", params={"task_id": "3"}) as resp:
                items = (await resp.json())["items"]
            assert all(r["attempts"] == 3 and r["delivery"] == "sent" for i in items for r in i["receipts"])


async def test_undeliverable_webhooks_are_abandoned_after_the_schedule(tmp_path):
    port = free_port()  # nothing listens there
    profile = profiles.from_builtins({**FAST, "receipt_delay": {"kind": "fixed", "seconds": 1}, "reorder": False,
                                      "duplicate_rate": 0})
    carrier = CarrierServer(str(tmp_path / "c.db"), clock="virtual", profile=profile,
                            callback=f"http://{HOST}:{port}/hook", secret=SECRET, tick=0.01)
    async with running(create_app(carrier)) as url, aiohttp.ClientSession() as s:
        await _post(s, f"{url}/submit", {"messages": _messages(4, 3)})
        for seconds in (2, 60, 300, 600):
            before = carrier.stats["webhooks_failed"]
            await _post(s, f"{url}/clock/advance", {"seconds": seconds})
            assert await _until(lambda: _true(carrier.stats["webhooks_failed"] == before + 1))
        async with s.get(f"{url}/ground-truth/summary", params={"task_id": "4"}) as resp:
            summary = await resp.json()
        assert summary["receipts"]["abandoned"] == summary["receipts"]["planned"] > 0


def test_cli_entry_points(tmp_path):
    """``python -m simulator.server`` and add_carrier_command parse the documented options."""
    import argparse

    from simulator.server import add_carrier_command

    parser = argparse.ArgumentParser(prog="smslab")
    add_carrier_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["carrier", "--port", "9999", "--db", "x.db", "--profile", "perfect", "--clock", "virtual",
                              "--callback", "http://127.0.0.1:1/h", "--secret", "s", "--clock-start", "1700000000"])
    assert (args.port, args.db, args.profile, args.clock, args.secret, args.clock_start) == (
        9999, "x.db", "perfect", "virtual", "s", 1700000000.0)
    out = subprocess.run([sys.executable, "-m", "simulator.server", "--profile", "no-such-preset", "--db", str(tmp_path / "c.db")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "neither a file nor a preset" in out.stderr
    out = subprocess.run([sys.executable, "-m", "simulator.server", "--callback", "http://127.0.0.1:1/h"],
                         capture_output=True, text=True, timeout=30, env={**os.environ, "SMSLAB_CARRIER_SECRET": ""})
    assert out.returncode == 2 and "--secret" in out.stderr
    # --account takes what PUT /accounts takes: a NUL or control character in the password, or a
    # system_id SMPP cannot carry, stops the carrier before it starts
    for spec in ("acme:p\x01w", "bad name:pw", "acme:", "a" * 16 + ":pw"):
        out = subprocess.run([sys.executable, "-m", "simulator.server", "--account", spec, "--db", str(tmp_path / "c.db")],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and "--account" in out.stderr, (spec, out.stderr)


async def _true(value):
    return value


# -- two real processes: the gateway and the carrier ------------------------------------------------------
def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def _wait_healthy(session, url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            async with session.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def stack(tmp_path):
    """The carrier and the gateway as two processes on 127.0.0.1, wired by webhook."""
    gw_port, carrier_port = free_port(), free_port()
    gw_url, carrier_url = f"http://{HOST}:{gw_port}", f"http://{HOST}:{carrier_port}"
    profile_file = tmp_path / "fast.json"
    profile_file.write_text(json.dumps(FAST))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSLAB_")}
    env.update(SMSLAB_HTTP_CARRIER_URL=carrier_url, SMSLAB_HTTP_SECRET=SECRET, SMSLAB_HTTP_NAME="http",
               PYTHONUNBUFFERED="1")
    carrier = _spawn([sys.executable, "-m", "simulator.server", "--host", HOST, "--port", str(carrier_port),
                      "--db", str(tmp_path / "carrier.db"), "--profile", str(profile_file), "--clock", "wall",
                      "--callback", f"{gw_url}/api/v1/platforms/http/receipts", "--secret", SECRET],
                     env, tmp_path / "carrier.log")
    gw_db = tmp_path / "gateway.db"
    smslab = [sys.executable, "-m", "gateway.cli"]
    gateway = _spawn([*smslab, "serve", "--clock", "wall", "--host", HOST, "--port", str(gw_port), "--db", str(gw_db)],
                     env, tmp_path / "gateway.log")
    try:
        yield {"gateway": gateway, "carrier": carrier, "gw_url": gw_url, "carrier_url": carrier_url,
               "gw_db": gw_db, "smslab": smslab, "env": env, "tmp": tmp_path}
    finally:
        _stop(gateway)
        _stop(carrier)


async def _metric(session, gw_url: str, name: str, platform: str = "http", auth: dict | None = None) -> float:
    async with session.get(f"{gw_url}/metrics", headers=auth) as resp:
        text = await resp.text()
    m = re.search(rf'^{name}_total\{{platform="{platform}"\}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@needs_plugin
async def test_gateway_and_carrier_as_two_processes(stack):
    gw_url, carrier_url = stack["gw_url"], stack["carrier_url"]
    tmp = stack["tmp"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        await _wait_healthy(s, carrier_url, stack["carrier"], tmp / "carrier.log")
        await _wait_healthy(s, gw_url, stack["gateway"], tmp / "gateway.log")
        out = subprocess.run([*stack["smslab"], "token", "create", "--workspace", "w", "--admin", "--db", str(stack["gw_db"])],
                             env=stack["env"], capture_output=True, text=True, timeout=30, check=True)
        token = out.stdout.strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {token}"}

        async with s.get(f"{gw_url}/api/v1/platforms", headers=auth) as resp:
            assert resp.status == 200
            assert "http" in json.dumps(await resp.json())

        numbers = [f"+86138002{i:05d}" for i in range(120)]
        async with s.post(f"{gw_url}/api/v1/audiences", json={"name": "crowd", "numbers": numbers}, headers=auth) as resp:
            assert resp.status == 201, await resp.text()
            audience = await resp.json()
        text = "Your parcel is on its way. " * 7  # long enough for two parts
        task_body = {"name": "over http", "platform": "http", "sms_type": "notification", "signature": "smslab",
                     "content": {"text": text}, "audience_id": audience["id"], "send_type": "immediate",
                     "sub_activities": []}
        async with s.post(f"{gw_url}/api/v1/tasks", json=task_body, headers=auth) as resp:
            assert resp.status == 201, await resp.text()
            task = await resp.json()
        task_id = task["id"]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with s.get(f"{gw_url}/api/v1/tasks/{task_id}", headers=auth) as resp:
                task = await resp.json()
            if task["status"] in ("completed", "failed", "rejected"):
                break
            await asyncio.sleep(0.2)
        assert task["status"] == "completed", (task, (tmp / "gateway.log").read_text()[-3000:],
                                               (tmp / "carrier.log").read_text()[-3000:])

        # the task is complete once every number is final; late duplicates may still be on their way
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            async with s.get(f"{carrier_url}/ground-truth/summary", params={"task_id": str(task_id)}) as resp:
                truth = await resp.json()
            if truth["receipts"]["pending"] == 0:
                break
            await asyncio.sleep(0.1)
        assert truth["messages"] == task["sent"] == len(numbers)
        assert task["succeeded"] == truth["delivered"] > 0
        assert task["failed"] == truth["failed"] > 0
        assert task["pending"] == 0
        assert truth["receipts"]["duplicates"] > 0  # duplicates were sent, and counted once
        # the gateway committed exactly the receipts the carrier pushed, no more and no fewer
        assert truth["receipts"]["sent"] == truth["receipts"]["planned"]
        committed = await _metric(s, gw_url, "smslab_receipts", auth=auth)
        assert committed == truth["receipts"]["sent"]

        # per number: the gateway's result equals the carrier's decision
        by_number: dict[str, str] = {}
        parts_sent = 0
        cursor, pages = None, 0
        while pages < 50:
            params = {"task_id": str(task_id), "limit": "100", **({"cursor": cursor} if cursor else {})}
            async with s.get(f"{carrier_url}/ground-truth", params=params) as resp:
                page = await resp.json()
            by_number.update({i["number"]: i["outcome"] for i in page["items"]})
            parts_sent += sum(i["parts"] for i in page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(by_number) == len(numbers)
        assert task["segments"] == parts_sent > len(numbers)  # multi-part messages, receipts per part
        expected = {"delivered": "succeeded", "failed": "failed"}
        for result in ("succeeded", "failed"):
            async with s.get(f"{gw_url}/api/v1/tasks/{task_id}/messages", params={"result": result, "limit": "1000"},
                             headers=auth) as resp:
                rows = (await resp.json())["items"]
            assert len(rows) == task[result]
        assert sum(1 for o in by_number.values() if expected[o] == "succeeded") == task["succeeded"]

        # forged webhooks: refused with 401 and nothing changes
        hook = f"{gw_url}/api/v1/platforms/http/receipts"
        async with s.get(f"{carrier_url}/ground-truth", params={"task_id": str(task_id), "limit": "1"}) as resp:
            pid = (await resp.json())["items"][0]["platform_id"]
        forged = webhooks.encode_receipts([{"platform_id": pid, "status": "failed", "at": time.time(), "part": 0,
                                            "code": "UNDELIV"}])
        now = int(time.time())
        attempts = {
            "unsigned": {"Content-Type": "application/json"},
            "bad signature": {"Content-Type": "application/json", webhooks.TIMESTAMP_HEADER: str(now),
                              webhooks.SIGNATURE_HEADER: webhooks.signature("not-the-secret", now, forged)},
            "stale timestamp": webhooks.sign_headers(SECRET, forged, timestamp=now - 3600),
            "tampered body": {**webhooks.sign_headers(SECRET, forged), "Content-Type": "application/json"},
        }
        for label, headers in attempts.items():
            body = forged + b" " if label == "tampered body" else forged
            async with s.post(hook, data=body, headers=headers) as resp:
                assert resp.status == 401, (label, resp.status, await resp.text())
                assert (await resp.json())["error"]["code"] == "webhook_rejected"
        # correctly signed but malformed: 400
        bad = b'{"receipts": [{"platform_id": 1}]}'
        async with s.post(hook, data=bad, headers=webhooks.sign_headers(SECRET, bad)) as resp:
            assert resp.status == 400
        assert await _metric(s, gw_url, "smslab_receipts", auth=auth) == committed
        async with s.get(f"{gw_url}/api/v1/tasks/{task_id}", headers=auth) as resp:
            after = await resp.json()
        for field in ("sent", "succeeded", "failed", "pending", "status"):
            assert after[field] == task[field], field

        # a genuine, signed webhook gets in (and, being a duplicate, changes no count)
        async with s.post(hook, data=forged, headers=webhooks.sign_headers(SECRET, forged)) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["accepted"] == 1
        assert await _metric(s, gw_url, "smslab_receipts", auth=auth) == committed + 1
        async with s.get(f"{gw_url}/api/v1/tasks/{task_id}", headers=auth) as resp:
            again = await resp.json()
        for field in ("sent", "succeeded", "failed", "pending"):
            assert again[field] == task[field], field
