"""Receipts pushed to the simulated carrier's webhook, ``POST /api/v1/platforms/sim/receipts``:

- ``ReceiptFirehose``: batches of ``--receipt-batch`` receipts (default 1000) per POST;
- ``SingleReceiptWebhook``: one receipt per POST, the way many SMS vendors call back.

Before the users start, the runner (the master in distributed mode) prepares a task whose
messages wait for receipts: it switches the carrier to the ``black-hole`` preset (accepts every
message, sends no receipt), sends a task of ``--receipt-numbers`` numbers, puts the previous
profile back as soon as the task is sent (decisions are taken at submission, so the restore
does not touch this task), and reads the messages' platform ids from the ground truth. The
master hands each worker its own slice of the ids. Each id's receipt is applied once; when a
user has gone round its slice, further receipts are duplicates (counted, changing nothing).

    SMSLAB_TOKEN=... locust -f loadtests/locustfile_receipts.py ReceiptFirehose \\
        --host http://127.0.0.1:8080 --headless -u 8 -r 8 -t 30s --csv out/firehose --html out/firehose.html

Run it against a testbed service: it creates an audience and a task, and briefly changes the
carrier's profile.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from locust import FastHttpUser, constant, events, task  # first: locust monkey-patches ssl and sockets with gevent

import gevent
import requests
from locust.runners import MasterRunner, WorkerRunner

from locust_common import auth_headers

log = logging.getLogger("smslab.loadtests")
IDS: list[str] = []  # platform ids this process sends receipts for


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--receipt-numbers", type=int, default=20000, help="numbers in the prepared task (default 20000)")
    parser.add_argument("--receipt-batch", type=int, default=1000, help="receipts per POST of the firehose (default 1000)")
    parser.add_argument("--receipt-task", type=int, default=0,
                        help="use this existing task's platform ids instead of preparing a task")


def _prepare(host: str, headers: dict, numbers: int, task_id: int) -> list[str]:
    """Send a task whose messages wait for receipts; return its platform ids."""
    s = requests.Session()
    s.headers.update(headers)
    deadline = time.monotonic() + 600
    if not task_id:
        previous = s.get(f"{host}/api/v1/simulator/profile", timeout=30)
        previous.raise_for_status()
        s.post(f"{host}/api/v1/simulator/presets/black-hole", timeout=30).raise_for_status()
        try:
            tag = uuid.uuid4().hex[:10]
            base = int(tag[:7], 16) % 10**8
            csv = "phone\n" + "".join(f"+8613{(base + i) % 10**9:09d}\n" for i in range(numbers))
            r = s.post(f"{host}/api/v1/audiences", params={"name": f"receipts-{tag}"}, data=csv.encode(),
                       headers={"Content-Type": "text/csv"}, timeout=300)
            r.raise_for_status()
            body = {"name": f"receipts-{tag}", "platform": "sim", "sms_type": "notification", "signature": "Shop",
                    "content": {"text": "Your code is 123456"}, "audience_id": r.json()["id"], "send_type": "immediate",
                    "sub_activities": []}
            r = s.post(f"{host}/api/v1/tasks", json=body, timeout=30)
            r.raise_for_status()
            task_id = r.json()["id"]
            while True:
                t = s.get(f"{host}/api/v1/tasks/{task_id}", timeout=30).json()
                if t["status"] not in ("moderating", "scheduled") and t.get("started_at") and (
                        t["sent"] + sum(t["skipped"].values()) >= t["audience_size"] > 0):
                    break
                if t["status"] in ("rejected", "failed") or time.monotonic() > deadline:
                    raise RuntimeError(f"the receipt task did not get sent: {t['status']} {t.get('status_reason')}")
                time.sleep(0.2)
        finally:
            s.put(f"{host}/api/v1/simulator/profile", data=previous.content,
                  headers={"Content-Type": "application/json"}, timeout=30)
    ids: list[str] = []
    cursor = None
    while time.monotonic() < deadline:
        params = {"task_id": task_id, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = s.get(f"{host}/api/v1/simulator/ground-truth", params=params, timeout=60).json()
        ids += [m["platform_id"] for m in page["items"] if m.get("platform_id")]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    log.info("receipt load: %d platform ids of task %s", len(ids), task_id)
    return ids


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        def take(msg, **_kw):
            IDS[:] = msg.data
            log.info("worker got %d platform ids", len(IDS))
        environment.runner.register_message("smslab_ids", take)


@events.test_start.add_listener
def _on_test_start(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    opts = environment.parsed_options
    ids = _prepare(environment.host.rstrip("/"), auth_headers(environment), opts.receipt_numbers, opts.receipt_task)
    if isinstance(environment.runner, MasterRunner):
        workers = sorted(environment.runner.clients.keys())
        for i, client_id in enumerate(workers):
            environment.runner.send_message("smslab_ids", ids[i::len(workers)], client_id)
    else:
        IDS[:] = ids


class _ReceiptUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    path = "/api/v1/platforms/sim/receipts"

    def on_start(self) -> None:
        self.headers = {**auth_headers(self.environment), "Content-Type": "application/json"}
        deadline = time.monotonic() + 600
        while not IDS and time.monotonic() < deadline:
            gevent.sleep(0.2)  # the prepared task's ids arrive from test_start (or the master)
        # each user starts at its own offset so users do not send the same receipts
        self.pos = (id(self) * 7919) % max(1, len(IDS))

    def _next(self, n: int) -> list[str]:
        out = [IDS[(self.pos + i) % len(IDS)] for i in range(n)]
        self.pos = (self.pos + n) % len(IDS)
        return out

    def _post(self, receipts: list[dict], name: str) -> None:
        body = json.dumps({"receipts": receipts}).encode()
        with self.client.post(self.path, data=body, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif r.json().get("accepted") != len(receipts):
                r.failure(f"accepted {r.json().get('accepted')} of {len(receipts)}")


class ReceiptFirehose(_ReceiptUser):
    @task
    def batch(self) -> None:
        if not IDS:
            return
        at = time.time()
        n = self.environment.parsed_options.receipt_batch
        receipts = [{"platform_id": pid, "status": "delivered", "at": at} for pid in self._next(n)]
        self._post(receipts, f"POST receipts x{n}")


class SingleReceiptWebhook(_ReceiptUser):
    @task
    def one(self) -> None:
        if not IDS:
            return
        (pid,) = self._next(1)
        self._post([{"platform_id": pid, "status": "delivered", "at": time.time()}], "POST receipts x1")
