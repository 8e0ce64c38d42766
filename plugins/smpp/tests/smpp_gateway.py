"""Helpers for the end-to-end tests: ``smslab serve`` with the ``smpp`` platform and
``smslab carrier --smpp-port`` as two processes on 127.0.0.1, and the checks that compare what
the gateway shows with what the carrier says it did (its ground truth)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gateway.domain.results import FAILED, PENDING, SUCCEEDED
from gateway.wire.smpp.receipts import normalise_id
from tests.pg_support import db_target, query
from tests.procs import Server, create_token, wait_for

RESULT_NAMES = {PENDING: "pending", SUCCEEDED: "succeeded", FAILED: "failed"}
FINAL = {"succeeded": "succeeded", "failed": "failed", "receipt_timeout": "failed"}


class Gateway:
    """``smslab serve`` with SMPP connections from ``urls`` (name -> URL). On the virtual clock
    (the default) ``send`` advances it past moderation, and that request returns once the task
    is sent (an advance settles what it started); on the wall clock the task starts by itself
    and ``send`` returns at once, so that a test can act while it is being sent."""

    def __init__(self, tmp: Path, urls: dict[str, str], workspace: str = "acme", env: dict[str, str] | None = None,
                 clock: str = "virtual"):
        self.clock = clock
        self.tmp = tmp
        self.db = db_target(tmp, "gateway.db", session=True)  # module-scoped fixtures share one gateway
        self.env = {("SMSLAB_SMPP_URL" if name == "smpp" else f"SMSLAB_SMPP_URL_{name.upper().replace('-', '_')}"): url
                    for name, url in urls.items()}
        self.env.update(env or {})
        self.token = create_token(self.db, workspace)
        self.server: Server | None = None
        self.start()

    def start(self) -> None:
        self.server = Server(self.db, "--clock", self.clock, env=self.env, log_path=self.tmp / "gateway.log")

    def kill(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.stop()

    def api(self, method: str, path: str, body=None, token: str | None = None):
        return self.server.request(method, path, token or self.token, body)

    def ok(self, method: str, path: str, body=None, token: str | None = None):
        status, out = self.api(method, path, body, token)
        assert 200 <= status < 300, (status, out)
        return out

    def advance(self, seconds: float) -> None:
        self.ok("POST", "/api/v1/clock/advance", {"seconds": seconds})

    def send(self, platform: str, numbers: list[str], text: str, name: str = "t", token: str | None = None) -> int:
        """A task to ``numbers`` through ``platform``, started: its id."""
        audience = self.ok("POST", "/api/v1/audiences", {"name": f"{name}-audience", "numbers": numbers}, token)
        task = self.ok("POST", "/api/v1/tasks", {"name": name, "platform": platform, "content": {"text": text},
                                                  "audience_id": audience["id"], "signature": "Shop"}, token)
        if self.clock == "virtual":
            self.advance(1)  # out of moderation
        return task["id"]

    def task(self, task_id: int, token: str | None = None) -> dict:
        return self.ok("GET", f"/api/v1/tasks/{task_id}", token=token)

    def sent(self, task_id: int, timeout: float = 60.0) -> dict:
        """The task once every number was sent or skipped."""
        def done():
            t = self.task(task_id)
            return t if t["sent"] + sum(t["skipped"].values()) == t["audience_size"] and t["sent"] else None
        return wait_for(done, timeout, what=f"task {task_id} to be sent")

    def rows(self, task_id: int) -> list[tuple[str, str, int, str | None]]:
        """(number, result, parts, platform_id) per number, read from the gateway's database
        itself: evidence independent of the API's counters."""
        rows = query(self.db, "SELECT number, result, parts, platform_id FROM messages WHERE task_id = ?", task_id)
        return [(n, RESULT_NAMES[r], p, pid) for n, r, p, pid in rows]


def truth_by_id(truth: list[dict]) -> dict[str, dict]:
    """Ground truth keyed by the id the gateway stores (normalised as the platform does)."""
    return {normalise_id(item["platform_id"], "auto", from_receipt=False): item for item in truth if item["platform_id"]}


def expected_counts(truth: list[dict]) -> Counter:
    return Counter(item["expected_result"] for item in truth)


def sent_duplicates(truth: list[dict]) -> int:
    """Receipts the carrier delivered beyond the first per part: what the gateway must count as
    duplicate receipts."""
    total = 0
    for item in truth:
        per_part = Counter(r["part"] for r in item["receipts"] if r["delivery"] == "sent")
        total += sum(n - 1 for n in per_part.values() if n > 1)
    return total
