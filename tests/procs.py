"""Helpers for tests that run smslab as a real process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import json
import urllib.request

from gateway.ports import free_port
from tests.pg_support import sim_env


def wait_for(check, timeout: float = 30.0, interval: float = 0.05, what="a condition"):
    """``check()`` until it returns something true; its last value in the error otherwise
    (``what`` may be a callable, to describe the state at the time of the failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}; last: {value!r}")
        time.sleep(interval)


def smslab(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}, timeout=60, **kw)


def create_token(db: str, workspace: str = "w", admin: bool = True) -> str:
    extra = ("--admin",) if admin else ()
    return smslab("token", "create", "--workspace", workspace, "--db", db, *extra).stdout.strip().splitlines()[-1]


class Server:
    def __init__(self, db: str, *extra: str, env: dict | None = None, log_path=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if log_path is not None:  # on PostgreSQL no database file has made the folder
            os.makedirs(os.path.dirname(os.fspath(log_path)) or ".", exist_ok=True)
        self.log = open(log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--db", db, *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **sim_env(db), **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"smslab serve exited with {self.proc.returncode}")
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smslab serve did not answer /healthz within 30 s")

    def request(self, method: str, path: str, token: str | None = None, body=None, content_type="application/json"):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
