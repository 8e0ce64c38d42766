"""smslab's pytest plugin (installed with smslab: entry point ``pytest11``, name ``smslab``).

Fixtures (see docs/testing.md):

- ``smslab_gateway``: a real ``smslab serve`` on a free 127.0.0.1 port, on a virtual clock, with a
  temporary SQLite file (or, with ``--smslab-db postgresql://…``, a fresh database on that
  server, dropped when the process stops); yields a :class:`gateway.client.Client` holding the admin token it
  printed (``base_url``, ``token``, ``request``, ``advance``, ``wait_for_task``,
  ``assert_matches_ground_truth`` and a method per route).
- ``smslab_carrier``: a real ``smslab carrier`` with an HTTP port, an ``--smpp-port``, a virtual
  clock, a temporary file, a control token and one SMPP account; yields a
  :class:`gateway.client.CarrierClient` (``base_url``, ``token``, ``smpp_port``, ``system_id``,
  ``password``).
- ``smslab_clock``: ``advance(seconds)`` moves the clock of every testbed the test uses (the
  gateway's and the carrier's) by the same amount; ``now()`` reads them.

Processes live for one test by default; ``--smslab-scope=session`` (or the ini option
``smslab_scope = session``) shares them across the session. ``--smslab-url``/``--smslab-token``
(and ``--smslab-carrier-url``/``--smslab-carrier-token``) point the fixtures at a testbed that is
already running instead of starting one. A failed test gets the processes' logs in its report.

Nothing here is imported from smslab's own tests; the processes are stopped (terminate, then kill)
and their temporary folders removed, whether the test passed or not.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from gateway.ports import free_port

__all__ = ["CarrierProcess", "GatewayProcess", "SmslabClock", "free_port"]

_TOKEN_LINE = re.compile(r"API token for workspace '[^']*': (\S+)")
_LOG_TAIL = 20_000  # characters of a log attached to a failed test's report
_OFFSETS_KEY = pytest.StashKey[dict]()


class _Process:
    """A smslab process on 127.0.0.1 with its own temporary folder (database, log)."""

    kind = "smslab"
    startup_timeout = 30.0

    def __init__(self, *extra: str, env: dict[str, str] | None = None, keep_dir: bool = False):
        self.extra = list(extra)
        self.env = env
        self.keep_dir = keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix=f"smslab-{self.kind}-"))
        self.log_path = self.dir / f"{self.kind}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.final_log: str | None = None
        self.first_item: str | None = None  # the test it was started for (the plugin's reports)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> "_Process":
        last_error = ""
        for _attempt in range(3):  # a free port may be taken between choosing it and binding it
            self._choose_ports()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})})
            try:
                self._wait_ready()
                return self
            except _PortTaken as exc:
                last_error = str(exc)
                continue
            except BaseException:
                self.stop()
                raise
        self.stop()
        raise RuntimeError(f"{self.kind} did not start: {last_error}")

    def _choose_ports(self) -> None:
        self.port = free_port()

    def _ready(self) -> bool:
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(self.base_url + "/healthz", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers (a 503 is a state to see, not a start failure)
        except OSError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log()
                if "already in use" in log:
                    self.log_path.write_text("")
                    raise _PortTaken(log.strip().splitlines()[-1])
                raise RuntimeError(f"{' '.join(self.command()[2:])} exited with {self.proc.returncode}:\n{log[-_LOG_TAIL:]}")
            if self._ready() and self._started():
                return
            time.sleep(0.03)
        raise RuntimeError(f"{self.kind} did not answer /healthz within {self.startup_timeout:.0f} s:\n{self.log()[-_LOG_TAIL:]}")

    def _started(self) -> bool:
        return True

    def log(self) -> str:
        """Everything the process printed so far."""
        if self.final_log is not None:
            return self.final_log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate (then kill after 10 s), keep the log in memory, remove the folder."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.final_log is None:
            self.final_log = self.log()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _PortTaken(Exception):
    pass


def _is_postgres(target: str) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def run_coroutine(make_coro) -> Any:
    """Run a coroutine to completion from a sync fixture, even on a thread whose event loop is
    running (an async test's): on a thread with a loop of its own."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(make_coro())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="smslab-db")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class PostgresDatabase:
    """A fresh database on the server of ``server_url`` (whose role may create databases), for one
    gateway process: ``create()`` gives its URL, ``drop()`` removes it, connections and all."""

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.name = f"smslab_{uuid.uuid4().hex[:12]}"
        self.url: str | None = None

    async def _admin(self, statement: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.server_url, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def create(self) -> str:
        from urllib.parse import urlsplit

        run_coroutine(lambda: self._admin(f"CREATE DATABASE {self.name}"))
        parts = urlsplit(self.server_url)
        self.url = f"{parts.scheme}://{parts.netloc}/{self.name}" + (f"?{parts.query}" if parts.query else "")
        return self.url

    def drop(self) -> None:
        if self.url is not None:
            self.url = None
            run_coroutine(lambda: self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))


class GatewayProcess(_Process):
    """``smslab serve --clock virtual`` on a free port with a fresh database; ``token`` is the
    admin token it printed. ``client()`` makes a :class:`gateway.client.Client`.

    ``db``: a SQLite file to use (default: ``gateway.db`` in the process's temporary folder), or a
    ``postgresql://`` URL of a server on which a fresh database is created for this process and
    dropped when it stops (the simulated carrier's books live in it too)."""

    kind = "gateway"

    def __init__(self, *extra: str, env: dict[str, str] | None = None, keep_dir: bool = False, db: str | None = None):
        super().__init__(*extra, env=env, keep_dir=keep_dir)
        self.postgres = PostgresDatabase(db) if db and _is_postgres(db) else None
        self.db: Path | str = Path(db) if db and not self.postgres else self.dir / "gateway.db"
        self.token: str | None = None

    def start(self) -> "GatewayProcess":
        if self.postgres is not None and self.postgres.url is None:
            self.db = self.postgres.create()  # the simulated carrier's books go into it too
        try:
            return super().start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.postgres is not None:
                self.postgres.drop()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--db", str(self.db), "--clock", "virtual", *self.extra]

    def _started(self) -> bool:
        found = _TOKEN_LINE.search(self.log())
        if found:
            self.token = found.group(1)
        return self.token is not None

    def client(self):
        from gateway.client import Client

        client = Client(self.base_url, self.token)
        client.process = self  # type: ignore[attr-defined]
        return client


class CarrierProcess(_Process):
    """``smslab carrier --clock virtual`` with an HTTP port, an SMPP port, a control token and one
    SMPP account (``system_id``/``password``); ``client()`` makes a
    :class:`gateway.client.CarrierClient`."""

    kind = "carrier"

    def __init__(self, *extra: str, env: dict[str, str] | None = None, keep_dir: bool = False,
                 system_id: str = "smslab", password: str | None = None, token: str | None = None):
        super().__init__(*extra, env=env, keep_dir=keep_dir)
        self.db = self.dir / "carrier.db"
        self.system_id = system_id
        self.password = password or secrets.token_hex(4)  # SMPP 3.4 passwords are at most 8 characters
        self.token = token or secrets.token_urlsafe(16)
        self.smpp_port = 0

    def _choose_ports(self) -> None:
        self.port = free_port()
        self.smpp_port = free_port()
        while self.smpp_port == self.port:
            self.smpp_port = free_port()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway.cli", "carrier", "--host", "127.0.0.1", "--port", str(self.port),
                "--smpp-port", str(self.smpp_port), "--db", str(self.db), "--clock", "virtual",
                # "--option=value": a random token may begin with "-", which argparse would take for an option
                f"--token={self.token}", f"--account={self.system_id}:{self.password}", *self.extra]

    def _started(self) -> bool:
        return "SMPP 3.4 on" in self.log()

    def client(self):
        from gateway.client import CarrierClient

        client = CarrierClient(self.base_url, self.token, smpp_port=self.smpp_port, system_id=self.system_id,
                               password=self.password)
        client.process = self  # type: ignore[attr-defined]
        return client


class SmslabClock:
    """Moves the clocks of several testbeds together (``smslab_clock``): the gateway's and the
    carrier's, each by the same number of seconds, in that order."""

    def __init__(self, clients: list[Any]):
        self.clients = clients

    def advance(self, seconds: float) -> list[Any]:
        return [client.advance(seconds) for client in self.clients]

    def now(self) -> list[str]:
        return [client.get_clock()["now"] for client in self.clients]


# -- options --------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smslab", "smslab testbed (smslab_gateway, smslab_carrier fixtures)")
    group.addoption("--smslab-scope", choices=("function", "session"), default=None,
                    help="how long the smslab processes live: one test (function, the default) or the session")
    group.addoption("--smslab-url", default=None,
                    help="use the gateway already running here (smslab serve --clock virtual) instead of starting one")
    group.addoption("--smslab-token", default=None, help="an admin token of the gateway at --smslab-url")
    group.addoption("--smslab-db", default=None, metavar="PATH_OR_URL",
                    help="the database of the gateway the fixture starts: a SQLite file, or postgresql://… (a server on "
                         "which each gateway gets a fresh database, dropped afterwards; the role needs CREATEDB)")
    group.addoption("--smslab-carrier-url", default=None,
                    help="use the carrier already running here (smslab carrier) instead of starting one")
    group.addoption("--smslab-carrier-token", default=None, help="the --token of the carrier at --smslab-carrier-url")
    group.addoption("--smslab-carrier-smpp-port", type=int, default=None, help="the SMPP port of that carrier")
    group.addoption("--smslab-carrier-account", default=None, metavar="SYSTEM_ID:PASSWORD",
                    help="an SMPP account of that carrier")
    parser.addini("smslab_scope", "how long the smslab processes live: function (default) or session", default="function")
    parser.addini("smslab_db", "the database of the gateway the fixture starts: a SQLite file or postgresql://…",
                  default="")
    parser.addini("smslab_gateway_args", "extra arguments of the smslab serve the fixture starts (e.g. --profile lossy)",
                  type="args", default=[])
    parser.addini("smslab_carrier_args", "extra arguments of the smslab carrier the fixture starts", type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    db = config.getoption("--smslab-db", default=None) or config.getini("smslab_db")
    if db:
        os.environ["SMSLAB_TEST_DB"] = db  # the conformance harness (gateway.testing.conformance) reads it too


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("--smslab-scope") or config.getini("smslab_scope") or "function"
    if scope not in ("function", "session"):
        raise pytest.UsageError(f"smslab_scope: function or session, not {scope!r}")
    return scope


def _env_or_option(config: pytest.Config, option: str, env: str) -> str | None:
    return config.getoption(option) or os.environ.get(env) or None


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope=_scope)
def smslab_gateway(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A :class:`gateway.client.Client` for a ``smslab serve`` on a virtual clock (started here,
    or the one at ``--smslab-url``)."""
    from gateway.client import Client

    url = _env_or_option(pytestconfig, "--smslab-url", "SMSLAB_URL")
    if url:
        token = _env_or_option(pytestconfig, "--smslab-token", "SMSLAB_TOKEN")
        if not token:
            raise pytest.UsageError("--smslab-url needs --smslab-token (or SMSLAB_TOKEN): an admin token of that gateway")
        with Client(url, token) as client:
            yield client
        return
    db = _env_or_option(pytestconfig, "--smslab-db", "SMSLAB_TEST_DB") or pytestconfig.getini("smslab_db") or None
    process = GatewayProcess(*pytestconfig.getini("smslab_gateway_args"), db=db).start()
    try:
        with process.client() as client:
            yield client
    finally:
        process.stop()


@pytest.fixture(scope=_scope)
def smslab_carrier(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A :class:`gateway.client.CarrierClient` for a ``smslab carrier`` with an SMPP port and an
    account (started here, or the one at ``--smslab-carrier-url``)."""
    from gateway.client import CarrierClient

    url = _env_or_option(pytestconfig, "--smslab-carrier-url", "SMSLAB_CARRIER_URL")
    if url:
        account = _env_or_option(pytestconfig, "--smslab-carrier-account", "SMSLAB_CARRIER_ACCOUNT") or ""
        system_id, _, password = account.partition(":")
        port = pytestconfig.getoption("--smslab-carrier-smpp-port") or os.environ.get("SMSLAB_CARRIER_SMPP_PORT")
        with CarrierClient(url, _env_or_option(pytestconfig, "--smslab-carrier-token", "SMSLAB_CARRIER_TOKEN"),
                           smpp_port=int(port) if port else None, system_id=system_id or None,
                           password=password or None) as client:
            yield client
        return
    process = CarrierProcess(*pytestconfig.getini("smslab_carrier_args")).start()
    try:
        with process.client() as client:
            yield client
    finally:
        process.stop()


@pytest.fixture
def smslab_clock(request: pytest.FixtureRequest) -> SmslabClock:
    """``advance(seconds)`` for every testbed this test uses (``smslab_gateway`` and/or
    ``smslab_carrier``, as the test asks for them): their clocks move together."""
    clients = [request.getfixturevalue(name) for name in ("smslab_gateway", "smslab_carrier")
               if name in request.fixturenames]
    if not clients:
        raise pytest.UsageError("smslab_clock moves the clocks of smslab_gateway and smslab_carrier: use one of them too")
    return SmslabClock(clients)


# -- logs in the report of a failed test ------------------------------------------------------------
def _processes_of(item: pytest.Item) -> list[_Process]:
    found = []
    for value in getattr(item, "funcargs", {}).values():
        process = getattr(value, "process", None)
        if isinstance(process, _Process):
            found.append(process)
        for client in getattr(value, "clients", None) or []:  # smslab_clock
            process = getattr(client, "process", None)
            if isinstance(process, _Process) and process not in found:
                found.append(process)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    processes = _processes_of(item)
    if not processes:
        return
    offsets = item.stash.setdefault(_OFFSETS_KEY, {})
    if call.when == "setup" and report.passed:
        # where each log stood when this test began: a process shared by the session has earlier
        # tests' lines (one started for this test shows all of its own)
        for process in processes:
            if process.first_item is None:
                process.first_item = item.nodeid
            offsets[id(process)] = 0 if process.first_item == item.nodeid else len(process.log())
        return
    if not report.failed:
        return
    for process in processes:
        text = process.log()[offsets.get(id(process), 0):]
        if len(text) > _LOG_TAIL:
            text = "[...]\n" + text[-_LOG_TAIL:]
        report.sections.append((f"smslab {process.kind} log ({process.base_url})", text or "(nothing printed during this test)"))

