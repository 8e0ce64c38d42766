"""Shared pieces of the benchmarks: start/stop a server process, seed a database with sqlite3,
measure peak RSS, print a result table. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
TOKEN_LINE = re.compile(r"API token for workspace '[^']*': (\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}, load avg {load:.2f}"


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the high-water mark of the resident set of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_http(url: str, timeout: float = 60.0, proc: "Proc | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            if proc is not None and proc.popen.poll() is not None:
                output = proc.popen.stdout.read() if proc.popen.stdout else ""
                raise RuntimeError(f"the server exited with {proc.popen.returncode} before answering {url}:\n{output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.1)


class Proc:
    """A child process serving HTTP on 127.0.0.1:port; optionally recorded by py-spy."""

    def __init__(self, argv: list[str], port: int, spy: str | None = None, env: dict | None = None):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.spy = spy
        self._spy_proc: subprocess.Popen | None = None
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
            env={**os.environ, **(env or {})},
        )
        self.token: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def spy_start(self) -> None:
        """Attach py-spy (if --spy was given) to the server for the measured window only."""
        if not self.spy:
            return
        pyspy = shutil.which("py-spy")
        if pyspy is None:
            raise SystemExit("--spy needs py-spy: pip install py-spy")
        self._spy_proc = subprocess.Popen(
            [pyspy, "record", "--format", "raw", "--rate", "250", "--nonblocking", *os.environ.get("SMSLAB_SPY_FLAGS", "").split(), "-o", self.spy, "--pid", str(self.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def spy_stop(self) -> None:
        if self._spy_proc is not None:
            self._spy_proc.send_signal(signal.SIGINT)
            try:
                self._spy_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._spy_proc.kill()
            self._spy_proc = None

    def read_token(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.popen.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if not line:
                if self.popen.poll() is not None:
                    raise RuntimeError("server exited:\n" + "".join(lines))
                continue
            lines.append(line)
            m = TOKEN_LINE.search(line)
            if m:
                self.token = m.group(1)
                return self.token
        raise RuntimeError("no token line from the server:\n" + "".join(lines))

    def stop(self) -> None:
        self.spy_stop()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout:
            with contextlib.suppress(Exception):
                rest = self.popen.stdout.read()
                if rest and "Traceback" in rest:
                    print(rest[-3000:], file=sys.stderr)


@contextlib.contextmanager
def smslab_server(db: str, profile: str | None = None, clock: str = "wall", spy: str | None = None,
                  env: dict | None = None) -> Iterator[Proc]:
    port = free_port()
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db, "--clock", clock]
    if profile:
        argv += ["--profile", profile]
    proc = Proc(argv, port, spy=spy, env=env)
    try:
        proc.read_token()
        wait_http(proc.base + "/healthz", proc=proc)
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def bare_server() -> Iterator[Proc]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "loadtests.bare", "--port", str(port)], port)
    try:
        wait_http(proc.base + "/ping", proc=proc)
        yield proc
    finally:
        proc.stop()


# -- seeding with sqlite3 ---------------------------------------------------------------------
def init_db(path: str) -> None:
    """Create the schema (the service's own migrations) and the 'default' workspace."""
    from gateway.storage.sqlite.schema import MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    conn.execute("INSERT OR IGNORE INTO workspaces(name, created_at) VALUES ('default', ?)", (time.time(),))
    conn.close()


TASK_COLUMNS = (
    "workspace_id, name, platform, sms_type, signature, content, content_summary, audience_id, audience_name,"
    " send_type, sub_activities, status, created_at, updated_at, parts, encoding, audience_size, sent, succeeded,"
    " failed, accepted, dispatch_started_at, dispatch_done_at, details_expire_at, completed_at"
)


def task_row(name: str, status: str, sent: int, succeeded: int, failed: int, now: float) -> tuple:
    content = json.dumps({"text": "Spring sale: 20% off everything this weekend"})
    done = now if status == "completed" else None
    return (1, name, "sim", "marketing", "Shop", content, "Spring sale: 20% off everything this weekend", 1, "bench",
            "immediate", "[]", status, now, now, 1, "GSM-7", sent, sent, succeeded, failed, sent, now, now,
            now + 168 * 3600, done)


def seed_pending_task(path: str, messages: int, name: str = "bench-ingest") -> tuple[int, int]:
    """One task in ``sending`` with ``messages`` pending, submitted message rows whose platform
    ids are ``sim-{task}-{id}``, ids contiguous. Returns (task_id, first message id)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    now = time.time()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO audiences(workspace_id, name, source, size, ready, created_at) VALUES (1, 'bench', 'upload', ?, 1, ?)",
                 (messages, now))
    cur = conn.execute(f"INSERT INTO tasks({TASK_COLUMNS}) VALUES ({','.join('?' * 25)})",
                       task_row(name, "sending", messages, 0, 0, now))
    task_id = cur.lastrowid
    (first,) = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM messages").fetchone()
    conn.executemany(
        "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (?,?,?,1,0,?,?)",
        ((first + i, task_id, f"+861390{i:07d}", f"sim-{task_id}-{first + i}", now) for i in range(messages)),
    )
    conn.execute("COMMIT")
    conn.close()
    return task_id, first


def task_counts(path: str, task_id: int) -> tuple:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT status, sent, succeeded, failed FROM tasks WHERE id=?", (task_id,)).fetchone()
    finally:
        conn.close()


# -- output -----------------------------------------------------------------------------------
def table(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "smslab", "same-run baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"## {title}", f"machine: {machine()}", "", line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
