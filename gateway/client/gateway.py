"""Clients for the gateway's REST API (``smslab serve``): :class:`Client` (sync, on
:mod:`urllib.request`) and :class:`AsyncClient` (aiohttp). One method per route (``ROUTES`` maps
each documented route to its method; a test keeps it equal to ``/api/openapi.json``), iterators
that follow ``next_cursor`` for the paged lists, and the testing helpers of SPEC §12:
:meth:`~Client.wait_for_task` and :meth:`~Client.assert_matches_ground_truth`.

Request bodies are the server's own msgspec models (:mod:`gateway.web.schemas`): pass a Struct,
a plain dict (sent as it is, so a test can send a wrong body on purpose), or keyword arguments,
which are converted to the model first (an unknown field or a wrong type fails before sending,
with ``msgspec.ValidationError``).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any, Iterable, Literal, Sequence

import msgspec

from gateway.web import schemas as S
from simulator import schemas as SimS

from . import truth as _truth
from ._core import ApiError, AsyncSession, AsyncTransport, SyncSession, SyncTransport

__all__ = ["ApiError", "AsyncClient", "Client", "ITERATORS", "PLUGIN_ROUTES", "ROUTES"]

Result = Literal["succeeded", "failed", "pending"]

#: every route of the gateway's API (as its OpenAPI document lists it) and the client method for it
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/"): "console",
    ("GET", "/healthz"): "health",
    ("GET", "/metrics"): "metrics",
    ("GET", "/api/openapi.json"): "openapi",
    ("POST", "/api/v1/audiences"): "create_audience",
    ("GET", "/api/v1/audiences"): "list_audiences",
    ("GET", "/api/v1/audiences/{id}"): "get_audience",
    ("DELETE", "/api/v1/audiences/{id}"): "delete_audience",
    ("POST", "/api/v1/tasks"): "create_task",
    ("GET", "/api/v1/tasks"): "list_tasks",
    ("GET", "/api/v1/tasks/{id}"): "get_task",
    ("PATCH", "/api/v1/tasks/{id}"): "update_task",
    ("DELETE", "/api/v1/tasks/{id}"): "delete_task",
    ("GET", "/api/v1/tasks/{id}/messages"): "list_messages",
    ("POST", "/api/v1/tasks/{id}/audiences"): "audience_from_task",
    ("GET", "/api/v1/platforms"): "list_platforms",
    ("POST", "/api/v1/platforms/{name}/receipts"): "push_receipts",
    ("GET", "/api/v1/receipts/unmatched"): "list_unmatched_receipts",
    ("GET", "/api/v1/clock"): "get_clock",
    ("POST", "/api/v1/clock/advance"): "advance",
    ("GET", "/api/v1/inbound"): "list_inbound",
    ("GET", "/api/v1/opt-outs"): "list_opt_outs",
    ("POST", "/api/v1/opt-outs"): "add_opt_out",
    ("DELETE", "/api/v1/opt-outs/{number}"): "remove_opt_out",
    ("GET", "/api/v1/simulator/profile"): "get_profile",
    ("PUT", "/api/v1/simulator/profile"): "put_profile",
    ("PATCH", "/api/v1/simulator/profile"): "patch_profile",
    ("POST", "/api/v1/simulator/reset"): "reset_simulator",
    ("GET", "/api/v1/simulator/presets"): "list_presets",
    ("POST", "/api/v1/simulator/presets/{name}"): "activate_preset",
    ("POST", "/api/v1/simulator/mo"): "mobile_originated",
    ("GET", "/api/v1/simulator/ground-truth"): "ground_truth",
}

#: routes that an optional platform plugin adds when it is installed (served, they are documented)
PLUGIN_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/platforms/{name}/{token}/receipts"): "push_receipts_with_token",  # smslab-aliyun's pushes
}

#: the paged lists and the iterator that walks each
ITERATORS = {
    "list_audiences": "iter_audiences", "list_tasks": "iter_tasks", "list_messages": "iter_messages",
    "list_unmatched_receipts": "iter_unmatched_receipts", "list_inbound": "iter_inbound",
    "list_opt_outs": "iter_opt_outs", "ground_truth": "iter_ground_truth",
}


def _body(model: type, given: Any, fields: dict) -> Any:
    """A request body: ``given`` as it is (a Struct or a dict), or ``fields`` checked against the
    server's model."""
    if given is not None:
        if fields:
            raise TypeError("give a body or keyword fields, not both")
        return given
    return msgspec.convert(fields, model)


def _seg(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


def _csv(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _page(limit: int | None, cursor: str | None, **params: Any) -> dict:
    return {"limit": limit, "cursor": cursor, **params}


class _Operations:
    """The routes, written once: each method returns ``self._call(...)``, which the sync client
    answers at once and the async one as a coroutine (``await client.get_task(1)``)."""

    def _call(self, method: str, path: str, json: Any = None, **kw) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _iter(self, path: str, params: dict) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- system ---------------------------------------------------------------------------------
    def health(self) -> Any:
        """GET /healthz (public): ``{"status", "clock", "checks"}``; a 503 raises ApiError whose
        ``body`` names what fails."""
        return self._call("GET", "/healthz")

    def metrics(self) -> Any:
        """GET /metrics (admin token): Prometheus text."""
        return self._call("GET", "/metrics", raw=True)

    def openapi(self) -> Any:
        """GET /api/openapi.json: the OpenAPI document."""
        return self._call("GET", "/api/openapi.json")

    def console(self) -> Any:
        """GET /: the web console's page (text)."""
        return self._call("GET", "/", raw=True)

    # -- audiences ------------------------------------------------------------------------------
    def create_audience(self, name: str | None = None, numbers: Iterable[str | int | None] | None = None, *,
                        body: S.AudienceCreate | dict | None = None, csv: str | bytes | None = None) -> Any:
        """POST /api/v1/audiences → 201 audience. ``create_audience("friends", ["+86..."])``, a
        body, or ``csv=`` text with a ``phone`` column (then ``name`` goes in the query)."""
        if csv is not None:
            return self._call("POST", "/api/v1/audiences", params={"name": name}, data=csv, content_type="text/csv")
        if body is None:
            body = S.AudienceCreate(name=name, numbers=list(numbers or []))
        return self._call("POST", "/api/v1/audiences", body)

    def list_audiences(self, *, limit: int | None = None, cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/audiences", params=_page(limit, cursor))

    def iter_audiences(self, *, limit: int | None = None) -> Any:
        return self._iter("/api/v1/audiences", _page(limit, None))

    def get_audience(self, audience_id: int) -> Any:
        return self._call("GET", f"/api/v1/audiences/{_seg(audience_id)}")

    def delete_audience(self, audience_id: int) -> Any:
        return self._call("DELETE", f"/api/v1/audiences/{_seg(audience_id)}")

    # -- tasks ----------------------------------------------------------------------------------
    def create_task(self, body: S.TaskCreate | dict | None = None, /, *, text: str | None = None, **fields: Any) -> Any:
        """POST /api/v1/tasks → 201 task. A body, or fields of ``TaskCreate``
        (``create_task(name="t", audience_id=a["id"], text="Hello")``; ``text`` is short for
        ``content={"text": ...}``; ``platform`` defaults to ``sim``)."""
        if text is not None:
            fields["content"] = {"text": text}
        return self._call("POST", "/api/v1/tasks", _body(S.TaskCreate, body, fields))

    def list_tasks(self, *, status: str | Sequence[str] | None = None, platform: str | None = None, q: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/tasks", params=_page(limit, cursor, status=_csv(status), platform=platform, q=q))

    def iter_tasks(self, *, status: str | Sequence[str] | None = None, platform: str | None = None, q: str | None = None,
                   limit: int | None = None) -> Any:
        return self._iter("/api/v1/tasks", _page(limit, None, status=_csv(status), platform=platform, q=q))

    def get_task(self, task_id: int) -> Any:
        return self._call("GET", f"/api/v1/tasks/{_seg(task_id)}")

    def update_task(self, task_id: int, body: S.TaskPatch | dict | None = None, /, **fields: Any) -> Any:
        """PATCH /api/v1/tasks/{id}: 409 ``task_locked`` when the task can no longer change."""
        return self._call("PATCH", f"/api/v1/tasks/{_seg(task_id)}", _body(S.TaskPatch, body, fields))

    def delete_task(self, task_id: int) -> Any:
        return self._call("DELETE", f"/api/v1/tasks/{_seg(task_id)}")

    def list_messages(self, task_id: int, *, result: str | Sequence[str] | None = None, q: str | None = None,
                      limit: int | None = None, cursor: str | None = None) -> Any:
        """GET /api/v1/tasks/{id}/messages: a page of per-number rows (410 ``details_expired``
        after the retention)."""
        return self._call("GET", f"/api/v1/tasks/{_seg(task_id)}/messages",
                          params=_page(limit, cursor, result=_csv(result), q=q))

    def iter_messages(self, task_id: int, *, result: str | Sequence[str] | None = None, q: str | None = None,
                      limit: int | None = 1000) -> Any:
        return self._iter(f"/api/v1/tasks/{_seg(task_id)}/messages", _page(limit, None, result=_csv(result), q=q))

    def audience_from_task(self, task_id: int, name: str | None = None, results: Sequence[Result] | None = None, *,
                           body: S.GenerateAudience | dict | None = None) -> Any:
        """POST /api/v1/tasks/{id}/audiences: a new audience of the numbers with these results."""
        if body is None:
            body = S.GenerateAudience(name=name, results=list(results or ["failed"]))
        return self._call("POST", f"/api/v1/tasks/{_seg(task_id)}/audiences", body)

    # -- platforms, receipts, clock -------------------------------------------------------------
    def list_platforms(self) -> Any:
        return self._call("GET", "/api/v1/platforms")

    def push_receipts(self, platform: str, receipts: S.PushedReceipts | dict | list, *,
                      headers: dict[str, str] | None = None) -> Any:
        """POST /api/v1/platforms/{name}/receipts: receipts as a platform pushes them. For ``sim``
        the bearer token authenticates them; a list is wrapped as ``{"receipts": [...]}``."""
        if isinstance(receipts, list):
            receipts = {"receipts": receipts}
        return self._call("POST", f"/api/v1/platforms/{_seg(platform)}/receipts", receipts, headers=headers)

    def push_receipts_with_token(self, platform: str, token: str, body: Any) -> Any:
        """POST /api/v1/platforms/{name}/{token}/receipts: a push authenticated by the token in
        its URL, as a provider that cannot sign sends it (smslab-aliyun's ``SmsReport``)."""
        return self._call("POST", f"/api/v1/platforms/{_seg(platform)}/{_seg(token)}/receipts", body)

    def list_unmatched_receipts(self, *, platform: str | None = None, limit: int | None = None,
                                cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/receipts/unmatched", params=_page(limit, cursor, platform=platform))

    def iter_unmatched_receipts(self, *, platform: str | None = None, limit: int | None = None) -> Any:
        return self._iter("/api/v1/receipts/unmatched", _page(limit, None, platform=platform))

    def get_clock(self) -> Any:
        return self._call("GET", "/api/v1/clock")

    def advance(self, seconds: float) -> Any:
        """POST /api/v1/clock/advance (admin token, virtual clock): returns once everything that
        fell due was processed."""
        return self._call("POST", "/api/v1/clock/advance", S.ClockAdvance(seconds=seconds))

    # -- inbound and opt-outs -------------------------------------------------------------------
    def list_inbound(self, *, sender: str | None = None, platform: str | None = None, limit: int | None = None,
                     cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/inbound", params=_page(limit, cursor, sender=sender, platform=platform))

    def iter_inbound(self, *, sender: str | None = None, platform: str | None = None, limit: int | None = None) -> Any:
        return self._iter("/api/v1/inbound", _page(limit, None, sender=sender, platform=platform))

    def list_opt_outs(self, *, q: str | None = None, limit: int | None = None, cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/opt-outs", params=_page(limit, cursor, q=q))

    def iter_opt_outs(self, *, q: str | None = None, limit: int | None = None) -> Any:
        return self._iter("/api/v1/opt-outs", _page(limit, None, q=q))

    def add_opt_out(self, number: str) -> Any:
        """POST /api/v1/opt-outs: 201 new, 200 already listed (the entry either way)."""
        return self._call("POST", "/api/v1/opt-outs", S.OptOutCreate(number=number))

    def remove_opt_out(self, number: str) -> Any:
        return self._call("DELETE", f"/api/v1/opt-outs/{_seg(number)}")

    # -- the simulated carrier ------------------------------------------------------------------
    def get_profile(self) -> Any:
        return self._call("GET", "/api/v1/simulator/profile")

    def put_profile(self, profile: Any = None, /, **fields: Any) -> Any:
        """PUT /api/v1/simulator/profile: replace the profile (fields left out take defaults)."""
        return self._call("PUT", "/api/v1/simulator/profile", profile if profile is not None else fields)

    def patch_profile(self, patch: SimS.ProfilePatch | dict | None = None, /, **fields: Any) -> Any:
        """PATCH /api/v1/simulator/profile: change some fields (``patch_profile(seed=7)``)."""
        return self._call("PATCH", "/api/v1/simulator/profile", patch if patch is not None else fields)

    def reset_simulator(self) -> Any:
        return self._call("POST", "/api/v1/simulator/reset")

    def list_presets(self) -> Any:
        return self._call("GET", "/api/v1/simulator/presets")

    def activate_preset(self, name: str) -> Any:
        return self._call("POST", f"/api/v1/simulator/presets/{_seg(name)}")

    def mobile_originated(self, from_: str, text: str, to: str | None = None) -> Any:
        """POST /api/v1/simulator/mo: a handset's reply (``STOP`` opts the sender out)."""
        return self._call("POST", "/api/v1/simulator/mo", SimS.MobileOriginated(from_=from_, text=text, to=to))

    def ground_truth(self, task_id: int, *, limit: int | None = None, cursor: str | None = None) -> Any:
        return self._call("GET", "/api/v1/simulator/ground-truth", params=_page(limit, cursor, task_id=task_id))

    def iter_ground_truth(self, task_id: int, *, limit: int | None = 1000) -> Any:
        return self._iter("/api/v1/simulator/ground-truth", _page(limit, None, task_id=task_id))


def _status_set(status: str | Iterable[str]) -> set[str]:
    return {status} if isinstance(status, str) else set(status)


class Client(SyncSession, _Operations):
    """A client for a running ``smslab serve``: ``Client("http://127.0.0.1:8080", token)``.

    ``request(method, path, json=None)`` returns the decoded JSON (text when the answer is not
    JSON, None when empty) and raises :class:`ApiError` on any 4xx/5xx. ``timeout`` is per
    request (an advance answers once everything that fell due was processed: it may take a
    while on a large task)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 300.0):
        self._http = SyncTransport(base_url, token, timeout)
        self.base_url = self._http.base_url
        self.token = token

    def wait_for_task(self, task_id: int, status: str | Iterable[str], timeout: float = 60, *,
                      interval: float = 0.05) -> dict:
        """Poll the task until its status is ``status`` (or one of several); the task. Real time:
        on a virtual clock something must move the clock (or the task be on its way already).
        ``TimeoutError`` after ``timeout`` seconds, naming the last task seen (``.task``)."""
        wanted = _status_set(status)
        deadline = time.monotonic() + timeout
        while True:
            task = self.get_task(task_id)
            if task["status"] in wanted:
                return task
            if time.monotonic() >= deadline:
                raise _timeout(task_id, wanted, timeout, task)
            time.sleep(interval)

    def assert_matches_ground_truth(self, task_id: int, *, final: bool = True) -> None:
        """Compare the task's per-number rows with the simulated carrier's ground truth (see
        :mod:`gateway.client.truth`); ``AssertionError`` listing each number that differs.
        ``final=False`` accepts ``pending`` for numbers whose receipts are still due."""
        task = self.get_task(task_id)
        rows = list(self.iter_messages(task_id))
        truth = list(self.iter_ground_truth(task_id))
        found, stray = _truth.pair(rows, truth, lambda n: list(self.iter_messages(task_id, q=_truth.digits(n))))
        lines = _truth.differences(task, rows, truth, found, stray, final=final)
        if lines:
            raise AssertionError(_truth.report(task_id, lines))


    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"


class AsyncClient(AsyncSession, _Operations):
    """:class:`Client`'s methods as coroutines, on aiohttp (``async with AsyncClient(url, token) as
    c: await c.get_task(1)``); the ``iter_*`` methods are async iterators. ``session=`` shares an
    ``aiohttp.ClientSession`` (then closing the client leaves it open)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 300.0, session: Any = None):
        self._http = AsyncTransport(base_url, token, timeout, session)
        self.base_url = self._http.base_url
        self.token = token

    async def wait_for_task(self, task_id: int, status: str | Iterable[str], timeout: float = 60, *,
                            interval: float = 0.05) -> dict:
        wanted = _status_set(status)
        deadline = time.monotonic() + timeout
        while True:
            task = await self.get_task(task_id)
            if task["status"] in wanted:
                return task
            if time.monotonic() >= deadline:
                raise _timeout(task_id, wanted, timeout, task)
            await asyncio.sleep(interval)

    async def assert_matches_ground_truth(self, task_id: int, *, final: bool = True) -> None:
        task = await self.get_task(task_id)
        rows = [r async for r in self.iter_messages(task_id)]
        truth = [t async for t in self.iter_ground_truth(task_id)]
        searched: dict[str, list[dict]] = {}
        for number in set(_truth.ambiguous(rows, truth)):
            searched[number] = [r async for r in self.iter_messages(task_id, q=_truth.digits(number))]
        found, stray = _truth.pair(rows, truth, lambda n: searched.get(n, []))
        lines = _truth.differences(task, rows, truth, found, stray, final=final)
        if lines:
            raise AssertionError(_truth.report(task_id, lines))


    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"


def _timeout(task_id: int, wanted: set[str], timeout: float, task: dict) -> TimeoutError:
    err = TimeoutError(f"task {task_id} is still {task['status']!r} after {timeout} s (waited for"
                       f" {' or '.join(sorted(wanted))}); last seen: {task}")
    err.task = task  # type: ignore[attr-defined]
    return err
