"""Shared fixtures: the real service (app factory + pytest-aiohttp), a real database (a SQLite
file, or a fresh PostgreSQL database with ``SMSLAB_TEST_BACKEND=postgres``: tests/pg_support.py),
the real plugins through their entry points, and a token for a fresh workspace."""

from __future__ import annotations

import pytest

from gateway.auth import create_token
from gateway.config import Config
from gateway.web.app import create_app
from gateway.web.keys import clock_key, storage_key
from tests.pg_support import (  # noqa: F401 (the autouse fixtures)
    configure_backend, db_target, drop_session_databases, drop_test_databases, skip_sqlite_only)


def pytest_configure(config):
    configure_backend()


def pytest_collection_modifyitems(config, items):
    skip_sqlite_only(items)


class Api:
    """A thin client for one workspace's token."""

    def __init__(self, client, token: str):
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, json=None, expect: int | None = None, **kw):
        resp = await self.client.request(method, path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return resp.status, body

    async def get(self, path, expect=200, **kw):
        return (await self.call("GET", path, expect=expect, **kw))[1]

    async def post(self, path, json=None, expect=201, **kw):
        return (await self.call("POST", path, json=json, expect=expect, **kw))[1]

    async def advance(self, seconds: float):
        return await self.post("/api/v1/clock/advance", {"seconds": seconds}, expect=200)

    async def audience(self, numbers, name="aud"):
        return await self.post("/api/v1/audiences", {"name": name, "numbers": numbers})

    async def task(self, audience_id, name="task", text="Hello", **fields):
        body = {"name": name, "platform": "sim", "sms_type": "marketing", "signature": "Shop",
                "content": {"text": text}, "audience_id": audience_id, "send_type": "immediate",
                "sub_activities": [{"id": "a1", "name": "Spring sale"}]}
        body.update(fields)
        return await self.post("/api/v1/tasks", body)

    async def profile(self, **fields):
        return (await self.call("PATCH", "/api/v1/simulator/profile", json=fields, expect=200))[1]


def make_config(tmp_path, name: str = "smslab.db", **kw) -> Config:
    """A Config on this run's backend (db_target). The simulated carrier keeps its books next to
    the SQLite file, or in the PostgreSQL database itself."""
    kw.setdefault("clock", "virtual")
    return Config(db_path=db_target(tmp_path, name), **kw)


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


@pytest.fixture
async def service(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    return client


@pytest.fixture
async def api(service):
    app = service.server.app
    token = await create_token(app[storage_key], "acme", app[clock_key].now(), admin=True)
    return Api(service, token)


@pytest.fixture
async def other_api(service):
    app = service.server.app
    token = await create_token(app[storage_key], "globex", app[clock_key].now())
    return Api(service, token)


def _dump_asyncio_tasks(signum, frame):  # pragma: no cover - a debugging aid: kill -USR1 <pytest pid>
    import asyncio
    import sys

    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        print("no running event loop", file=sys.stderr)
        return
    for task in tasks:
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


try:
    import signal as _signal

    _signal.signal(_signal.SIGUSR1, _dump_asyncio_tasks)
except (ValueError, AttributeError):  # not the main thread, or no SIGUSR1 on this platform
    pass
