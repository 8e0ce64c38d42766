"""A marketer using the smslab API: uploads audiences, creates tasks, lists them, opens details,
pages through numbers and generates audiences from a task's failed numbers.

    SMSLAB_TOKEN=... locust -f loadtests/locustfile_marketer.py --host http://127.0.0.1:8080 \\
        --headless -u 20 -r 5 -t 60s --csv out/marketer --html out/marketer.html

Exit code 1 when --max-fail-ratio / --max-p95-ms / --max-p99-ms / --min-rps are missed
(see locust_common.py). Run it against a testbed service: it creates audiences and tasks.
"""

from __future__ import annotations

import random
import uuid

from locust import FastHttpUser, between, task

from locust_common import auth_headers  # noqa: F401  (also registers the options and exit-code listener)

TEXTS = [
    "Spring sale: 20% off everything this weekend. Reply STOP to opt out",
    "Your order has shipped and arrives on Friday",
    "新品上市，全场八折，详情见店内",  # UCS-2: a different segmentation path
]


class Marketer(FastHttpUser):
    wait_time = between(0.5, 2.0)
    audience_size = 200

    def on_start(self) -> None:
        self.headers = auth_headers(self.environment)
        self.audiences: list[int] = []
        self.my_tasks: list[int] = []
        self.sent_tasks: list[int] = []
        self.upload_audience()

    # -- writes ------------------------------------------------------------------------------
    @task(1)
    def upload_audience(self) -> None:
        base = random.randrange(10**8)
        numbers = [f"+8613{(base + i) % 10**9:09d}" for i in range(self.audience_size)]
        numbers += ["", "not a number", numbers[0]]  # one empty, one invalid, one duplicate
        with self.rest("POST", "/api/v1/audiences", json={"name": f"lt-{uuid.uuid4().hex[:12]}", "numbers": numbers},
                       headers=self.headers, name="POST /audiences") as r:
            if r.js and "id" in r.js:
                self.audiences.append(r.js["id"])

    @task(2)
    def create_task(self) -> None:
        if not self.audiences:
            return
        body = {
            "name": f"lt-{uuid.uuid4().hex[:12]}",
            "platform": "sim",
            "sms_type": random.choice(["marketing", "notification"]),
            "signature": "Shop",
            "content": {"text": random.choice(TEXTS)},
            "audience_id": random.choice(self.audiences),
            "send_type": "immediate",
            "sub_activities": [{"id": "spring", "name": "Spring campaign"}],
        }
        with self.rest("POST", "/api/v1/tasks", json=body, headers=self.headers, name="POST /tasks") as r:
            if r.js and "id" in r.js:
                self.my_tasks.append(r.js["id"])

    @task(1)
    def generate_audience(self) -> None:
        if not self.sent_tasks:
            return
        task_id = random.choice(self.sent_tasks)
        body = {"name": f"lt-gen-{uuid.uuid4().hex[:12]}", "results": ["failed", "pending"]}
        with self.rest("POST", f"/api/v1/tasks/{task_id}/audiences", json=body, headers=self.headers,
                       name="POST /tasks/{id}/audiences") as r:
            if r.status_code == 410:
                r.success()  # details expired: an expected answer, not a failure
            elif r.js and "id" in r.js:
                self.audiences.append(r.js["id"])

    # -- reads -------------------------------------------------------------------------------
    @task(6)
    def list_tasks(self) -> None:
        with self.rest("GET", "/api/v1/tasks?limit=20", headers=self.headers, name="GET /tasks") as r:
            if r.js and r.js.get("next_cursor"):
                self.client.get(f"/api/v1/tasks?limit=20&cursor={r.js['next_cursor']}", headers=self.headers,
                                name="GET /tasks?cursor")

    @task(4)
    def list_filtered(self) -> None:
        status = random.choice(["sending", "completed", "moderating,scheduled"])
        self.client.get(f"/api/v1/tasks?status={status}&limit=20", headers=self.headers, name="GET /tasks?status")

    @task(6)
    def task_detail(self) -> None:
        if not self.my_tasks:
            return
        task_id = random.choice(self.my_tasks)
        with self.rest("GET", f"/api/v1/tasks/{task_id}", headers=self.headers, name="GET /tasks/{id}") as r:
            if r.js and r.js.get("sent") and task_id not in self.sent_tasks:
                self.sent_tasks.append(task_id)

    @task(4)
    def page_numbers(self) -> None:
        if not self.sent_tasks:
            return
        task_id = random.choice(self.sent_tasks)
        result = random.choice(["", "&result=failed", "&result=succeeded,pending"])
        cursor = None
        for _ in range(3):
            path = f"/api/v1/tasks/{task_id}/messages?limit=50{result}" + (f"&cursor={cursor}" if cursor else "")
            with self.rest("GET", path, headers=self.headers, name="GET /tasks/{id}/messages") as r:
                if r.status_code == 410:
                    r.success()
                    return
                cursor = r.js.get("next_cursor") if r.js else None
            if not cursor:
                return
