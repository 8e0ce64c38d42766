"""Clients for the standalone carrier's control API (``smslab carrier``, simulator/server.py):
:class:`CarrierClient` (sync) and :class:`AsyncCarrierClient`. ``CARRIER_ROUTES`` maps each of its
routes to a method (a test keeps it equal to ``simulator.server.routes``).

Besides the HTTP API a carrier may listen for SMPP: ``smpp_host``/``smpp_port`` and an account's
``system_id``/``password`` say where a gateway under test binds (SPEC §12)."""

from __future__ import annotations

import urllib.parse
from typing import Any, Sequence

from ._core import AsyncSession, AsyncTransport, SyncSession, SyncTransport
from .gateway import _page, _seg

__all__ = ["AsyncCarrierClient", "CARRIER_ROUTES", "CarrierClient"]

CARRIER_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "health",
    ("POST", "/submit"): "submit",
    ("GET", "/messages/{platform_id}"): "get_message",
    ("GET", "/profile"): "get_profile",
    ("PUT", "/profile"): "put_profile",
    ("PATCH", "/profile"): "patch_profile",
    ("GET", "/presets"): "list_presets",
    ("POST", "/presets/{name}"): "activate_preset",
    ("POST", "/moderate"): "moderate",
    ("GET", "/clock"): "get_clock",
    ("POST", "/clock/advance"): "advance",
    ("POST", "/deliver"): "deliver",
    ("GET", "/ground-truth"): "ground_truth",
    ("GET", "/ground-truth/summary"): "ground_truth_summary",
    ("POST", "/reset"): "reset",
    ("GET", "/accounts"): "list_accounts",
    ("GET", "/accounts/{system_id}"): "get_account",
    ("PUT", "/accounts/{system_id}"): "put_account",
    ("PATCH", "/accounts/{system_id}"): "patch_account",
    ("DELETE", "/accounts/{system_id}"): "delete_account",
    ("GET", "/dialects"): "list_dialects",
    ("GET", "/journal"): "journal",
    ("POST", "/mo"): "mobile_originated",
}


def _account_body(body: Any, fields: dict) -> Any:
    from simulator.accounts import AccountChange

    if body is not None:
        return body
    import msgspec

    return msgspec.convert(fields, AccountChange)


class _CarrierOperations:
    smpp_port: int | None
    system_id: str | None
    password: str | None

    def _call(self, method: str, path: str, json: Any = None, **kw) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _iter(self, path: str, params: dict) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def smpp_host(self) -> str:
        """The host the carrier's SMPP port is on (its HTTP API's)."""
        return urllib.parse.urlsplit(self.base_url).hostname or "127.0.0.1"  # type: ignore[attr-defined]

    def health(self) -> Any:
        return self._call("GET", "/healthz")

    def submit(self, messages: Sequence[Any]) -> Any:
        """POST /submit: ``[{key, number, text, parts, task_id}]`` (dicts or ``SubmitIn``) →
        ``{"results": [{key, platform_id}]}``; 429 ``throttled``, 503 ``outage``."""
        return self._call("POST", "/submit", {"messages": list(messages)})

    def get_message(self, platform_id: str) -> Any:
        return self._call("GET", f"/messages/{_seg(platform_id)}")

    def get_profile(self) -> Any:
        return self._call("GET", "/profile")

    def put_profile(self, profile: Any = None, /, **fields: Any) -> Any:
        return self._call("PUT", "/profile", profile if profile is not None else fields)

    def patch_profile(self, patch: Any = None, /, **fields: Any) -> Any:
        return self._call("PATCH", "/profile", patch if patch is not None else fields)

    def list_presets(self) -> Any:
        return self._call("GET", "/presets")

    def activate_preset(self, name: str) -> Any:
        return self._call("POST", f"/presets/{_seg(name)}")

    def moderate(self, text: str) -> Any:
        return self._call("POST", "/moderate", {"text": text})

    def get_clock(self) -> Any:
        return self._call("GET", "/clock")

    def advance(self, seconds: float) -> Any:
        """POST /clock/advance (virtual clock; 409 on the wall clock)."""
        return self._call("POST", "/clock/advance", {"seconds": seconds})

    def deliver(self) -> Any:
        """POST /deliver: push every due receipt to the --callback now (409 ``no_callback``)."""
        return self._call("POST", "/deliver")

    def ground_truth(self, task_id: int | None = None, *, account: str | None = None, limit: int | None = None,
                     cursor: str | None = None) -> Any:
        return self._call("GET", "/ground-truth", params=_page(limit, cursor, task_id=task_id, account=account))

    def iter_ground_truth(self, task_id: int | None = None, *, account: str | None = None,
                          limit: int | None = 1000) -> Any:
        return self._iter("/ground-truth", _page(limit, None, task_id=task_id, account=account))

    def ground_truth_summary(self, task_id: int) -> Any:
        return self._call("GET", "/ground-truth/summary", params={"task_id": task_id})

    def reset(self, account: str | None = None) -> Any:
        return self._call("POST", "/reset", params={"account": account})

    def list_accounts(self) -> Any:
        return self._call("GET", "/accounts")

    def get_account(self, system_id: str) -> Any:
        return self._call("GET", f"/accounts/{_seg(system_id)}")

    def put_account(self, system_id: str, body: Any = None, /, **fields: Any) -> Any:
        """PUT /accounts/{system_id}: create (201) or replace (200) an account
        (``put_account("esme", password="secret")``)."""
        return self._call("PUT", f"/accounts/{_seg(system_id)}", _account_body(body, fields))

    def patch_account(self, system_id: str, body: Any = None, /, **fields: Any) -> Any:
        return self._call("PATCH", f"/accounts/{_seg(system_id)}", _account_body(body, fields))

    def delete_account(self, system_id: str) -> Any:
        return self._call("DELETE", f"/accounts/{_seg(system_id)}")

    def list_dialects(self) -> Any:
        return self._call("GET", "/dialects")

    def journal(self, *, account: str | None = None, command: str | None = None, limit: int | None = None,
                cursor: str | None = None) -> Any:
        """GET /journal: the PDUs in and out, oldest first."""
        return self._call("GET", "/journal", params=_page(limit, cursor, account=account, command=command))

    def iter_journal(self, *, account: str | None = None, command: str | None = None, limit: int | None = 1000) -> Any:
        return self._iter("/journal", _page(limit, None, account=account, command=command))

    def mobile_originated(self, from_: str, text: str, to: str, account: str | None = None) -> Any:
        """POST /mo: a handset's message to ``to``, delivered to ``account`` (default: this
        client's ``system_id``) as a ``deliver_sm``."""
        return self._call("POST", "/mo", {"account": account or self.system_id, "from": from_, "to": to, "text": text})


class CarrierClient(SyncSession, _CarrierOperations):
    """A client for a running ``smslab carrier``. ``smpp_port``, ``system_id`` and ``password``
    are what a gateway under test needs to bind (None when unknown)."""

    def __init__(self, base_url: str, token: str | None = None, *, smpp_port: int | None = None,
                 system_id: str | None = None, password: str | None = None, timeout: float = 300.0):
        self._http = SyncTransport(base_url, token, timeout)
        self.base_url = self._http.base_url
        self.token = token
        self.smpp_port = smpp_port
        self.system_id = system_id
        self.password = password


    def __repr__(self) -> str:
        return f"CarrierClient({self.base_url!r}, smpp_port={self.smpp_port!r}, system_id={self.system_id!r})"


class AsyncCarrierClient(AsyncSession, _CarrierOperations):
    def __init__(self, base_url: str, token: str | None = None, *, smpp_port: int | None = None,
                 system_id: str | None = None, password: str | None = None, timeout: float = 300.0, session: Any = None):
        self._http = AsyncTransport(base_url, token, timeout, session)
        self.base_url = self._http.base_url
        self.token = token
        self.smpp_port = smpp_port
        self.system_id = system_id
        self.password = password

