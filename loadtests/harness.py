"""Shared pieces of the benchmarks: start/stop a server process, seed a database with sqlite3
(or asyncpg: a scratch PostgreSQL database), measure peak RSS, print a result table. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from gateway.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN_LINE = re.compile(r"API token for workspace '[^']*': (\S+)")


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


# -- PostgreSQL scratch databases ------------------------------------------------------------
def pg_candidate_urls(override: str | None = None) -> list[str]:
    """Where to create scratch databases: ``--pg-url`` if given, else the local server as this
    user over the Unix socket (Debian's peer authentication), then 127.0.0.1:5432 as this user
    and as ``postgres``. The same ways in as tests/pg_support.py."""
    if override:
        return [override]
    import getpass

    user = getpass.getuser()
    urls = [f"postgresql://{user}@/postgres?host={d}" for d in ("/var/run/postgresql", "/tmp")
            if os.path.exists(os.path.join(d, ".s.PGSQL.5432"))]
    urls += [f"postgresql://{user}@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/postgres"]
    return list(dict.fromkeys(urls))


def pg_admin_url(override: str | None = None) -> str:
    """The first URL that lets us in (checked by connecting), or SystemExit naming each failure."""
    import asyncio

    import asyncpg

    async def first() -> str:
        errors = []
        for url in pg_candidate_urls(override):
            try:
                conn = await asyncpg.connect(url, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            await conn.close()
            return url
        raise SystemExit("PostgreSQL is not reachable (--pg-url to point at a server):\n  " + "\n  ".join(errors))

    return asyncio.run(first())


@contextlib.contextmanager
def pg_scratch(admin_url: str, prefix: str = "smslab_bench") -> Iterator[str]:
    """The URL of a new, empty database on the server of ``admin_url``, dropped on the way out
    (connections a killed server left open included)."""
    import asyncio
    import uuid

    import asyncpg

    from loadtests.pg_floor import with_database

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield with_database(admin_url, name)
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def pg_seed_pending_task(url: str, messages: int, name: str = "bench-ingest") -> tuple[int, int]:
    """``seed_pending_task`` on PostgreSQL: the service's migrations, the 'default' workspace, one
    task in ``sending`` with ``messages`` submitted rows (platform ids ``sim-{task}-{id}``) written
    by COPY. Returns (task_id, first message id)."""
    import asyncio

    import asyncpg

    from gateway.storage.postgres.db import migrate

    async def seed() -> tuple[int, int]:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            now = time.time()
            async with conn.transaction():
                await conn.execute("INSERT INTO workspaces(name, created_at) VALUES ('default', $1) ON CONFLICT DO NOTHING", now)
                await conn.execute("INSERT INTO audiences(workspace_id, name, source, size, ready, created_at)"
                                   " VALUES (1, 'bench', 'upload', $1, 1, $2)", messages, now)
                task_id = await conn.fetchval(
                    f"INSERT INTO tasks({TASK_COLUMNS}) VALUES ({','.join(f'${i}' for i in range(1, 26))}) RETURNING id",
                    *task_row(name, "sending", messages, 0, 0, now))
                first = await conn.fetchval("SELECT COALESCE(MAX(id), 0) + 1 FROM messages")
                await conn.copy_records_to_table(
                    "messages", columns=["id", "task_id", "number", "parts", "result", "platform_id", "submitted_at"],
                    records=((first + i, task_id, f"+861390{i:07d}", 1, 0, f"sim-{task_id}-{first + i}", now) for i in range(messages)))
                # later rows the service adds take ids past the seeded ones
                await conn.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), $1)", first + messages)
            await conn.execute("ANALYZE messages")
            return task_id, first
        finally:
            await conn.close()

    return asyncio.run(seed())


def pg_task_counts(url: str, task_id: int) -> tuple:
    import asyncio

    import asyncpg

    async def read() -> tuple:
        conn = await asyncpg.connect(url)
        try:
            return tuple(await conn.fetchrow("SELECT status, sent, succeeded, failed FROM tasks WHERE id=$1", task_id))
        finally:
            await conn.close()

    return asyncio.run(read())


# -- output -----------------------------------------------------------------------------------
def table(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "smslab", "same-run baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"## {title}", f"machine: {machine()}", "", line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
