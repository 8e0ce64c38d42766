"""One test per hook in gateway/hookspecs.py, each through the real service: create_app with a
plugin manager holding a throwaway plugin, an aiohttp test client on 127.0.0.1, and the virtual
clock advanced over the API. tests/test_hooks_documented.py checks that every hook has a
``test_hook_<hook name>`` here.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from gateway.auth import create_token
from gateway.config import Config
from gateway.hookspecs import hookimpl
from gateway.platform import InboundMessage, Platform, Receipt, SubmitItem, SubmitResult
from gateway.plugins import build_plugin_manager
from gateway.web.app import create_app
from gateway.web.keys import platforms_key, storage_key
from tests.conftest import make_config

START = 1_700_000_000.0
NUMBERS = [f"+861380013{i:04d}" for i in range(1, 7)]
# every number delivered, one receipt a second after submission, no review delay
PERFECT = {
    "seed": 1,
    "outcomes": {"delivered": 1, "failed": 0, "missing": 0},
    "receipt_delay": {"kind": "fixed", "seconds": 1},
    "moderation": {"banned_words": [], "review_seconds": 0},
    "duplicate_rate": 0,
}


class Api:
    def __init__(self, client, token: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, json=None, status: int = 200):
        resp = await self.client.request(method, path, json=json, headers=self.headers)
        data = await resp.json()
        assert resp.status == status, (resp.status, data)
        return data

    async def advance(self, seconds: float) -> None:
        await self.call("POST", "/api/v1/clock/advance", {"seconds": seconds})

    async def send(self, text: str = "Your code is 1234", platform: str = "sim", numbers=NUMBERS, name: str = "t1") -> dict:
        audience = await self.call("POST", "/api/v1/audiences", {"name": f"aud-{name}", "numbers": numbers}, status=201)
        task = await self.call(
            "POST", "/api/v1/tasks",
            {"name": name, "platform": platform, "signature": "smslab", "content": {"text": text},
             "audience_id": audience["id"], "send_type": "immediate"},
            status=201,
        )
        return task

    async def task(self, task_id: int) -> dict:
        return await self.call("GET", f"/api/v1/tasks/{task_id}")


@pytest.fixture
def service(aiohttp_client, tmp_path):
    """``await service(plugin, ...)`` → an Api on a fresh service with those plugins registered."""

    async def start(*plugins) -> Api:
        pm = build_plugin_manager()
        for plugin in plugins:
            pm.register(plugin)
        config = make_config(tmp_path, "t.db", clock_start=START)
        app = create_app(config, pm=pm)
        client = await aiohttp_client(app)
        api = Api(client, await create_token(app[storage_key], "hooks", START, admin=True))
        if "sim" in app[platforms_key]:
            await api.call("PUT", "/api/v1/simulator/profile", PERFECT)
        return api

    return start


# -- smslab_register_platforms ----------------------------------------------------------------------
class EchoPlatform(Platform):
    """Accepts everything; every message is delivered one second after it was submitted."""

    name = "echo"
    description = "a throwaway platform registered by a test"

    def __init__(self):
        self.due: dict[str, float] = {}
        self.ids: dict[str, str] = {}

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        now = self.ctx.clock.now()
        for item in batch:
            if item.key not in self.ids:
                self.ids[item.key] = f"echo-{item.key}"
                self.due[self.ids[item.key]] = now + 1
        return [SubmitResult(item.key, self.ids[item.key]) for item in batch]

    async def on_clock(self, now: float) -> None:
        ready = [pid for pid, due in self.due.items() if due <= now]
        if ready:
            await self.ctx.deliver_receipts(self.name, [Receipt(pid, "delivered", self.due[pid]) for pid in ready])
            for pid in ready:
                del self.due[pid]


class RegistersEcho:
    @hookimpl
    def smslab_register_platforms(self, config):
        assert isinstance(config, Config)
        return [EchoPlatform()]


async def test_hook_smslab_register_platforms(service):
    api = await service(RegistersEcho())
    platforms = await api.call("GET", "/api/v1/platforms")
    by_name = {p["name"]: p for p in platforms["items"]}
    assert by_name["echo"]["description"] == "a throwaway platform registered by a test"
    assert "sim" in by_name  # the built-in platform is still there
    task = await api.send(platform="echo")
    await api.advance(5)
    detail = await api.task(task["id"])
    assert detail["status"] == "completed", detail
    assert (detail["sent"], detail["succeeded"], detail["failed"], detail["pending"]) == (len(NUMBERS), len(NUMBERS), 0, 0)


class CarriesOver(EchoPlatform):
    """Like an SMSC that holds receipts while the gateway is away and sends them as soon as the
    gateway binds again: receipts arrive while the platform starts, before the engine exists."""

    carried: dict[str, float] = {}

    async def start(self, ctx) -> None:
        self.ctx = ctx
        held, CarriesOver.carried = dict(CarriesOver.carried), {}
        if held:
            await ctx.deliver_receipts(self.name, [Receipt(pid, "delivered", at) for pid, at in held.items()])

    async def submit(self, batch):
        results = await super().submit(batch)
        CarriesOver.carried.update(self.due)  # delivered only by the next instance, as it starts
        self.due.clear()
        return results


class RegistersCarriesOver:
    @hookimpl
    def smslab_register_platforms(self, config):
        return [CarriesOver()]


async def test_receipts_handed_over_while_a_platform_starts(service):
    """They used to reach the engine before it existed: the receipt sink died with a NameError
    and every later receipt waited for ever."""
    first = await service(RegistersCarriesOver())
    task = await first.send(platform="echo")
    await first.advance(0.5)  # sent; the receipts stay with the "SMSC"
    assert (await first.task(task["id"]))["pending"] == len(NUMBERS)
    await first.client.close()
    again = await service(RegistersCarriesOver())  # same database; the receipts come during start
    detail = await again.task(task["id"])
    assert (detail["succeeded"], detail["pending"]) == (len(NUMBERS), 0), detail
    # and the sink still takes receipts afterwards
    later = await again.send(platform="echo", name="t2", numbers=[f"+861390013{i:04d}" for i in range(1, 4)])
    await again.advance(0.5)
    await again.client.close()
    final = await service(RegistersCarriesOver())
    assert (await final.task(later["id"]))["succeeded"] == 3


async def test_register_platforms_duplicate_name_is_refused(tmp_path):
    class Twice:
        @hookimpl
        def smslab_register_platforms(self, config):
            return [EchoPlatform()]

    pm = build_plugin_manager(load_entrypoints=False)
    pm.register(RegistersEcho())
    pm.register(Twice())
    with pytest.raises(RuntimeError, match="echo"):
        create_app(make_config(tmp_path, "t.db"), pm=pm)


# -- smslab_moderate_content -------------------------------------------------------------------------
class RejectsJackpot:
    def __init__(self):
        self.seen: list[tuple[str, dict]] = []

    @hookimpl
    def smslab_moderate_content(self, text, task):
        self.seen.append((text, task))
        return ["the word 'jackpot' is not allowed"] if "jackpot" in text.lower() else None


class RejectsJackpotAsync(RejectsJackpot):
    @hookimpl
    async def smslab_moderate_content(self, text, task):
        self.seen.append((text, task))
        return ["the word 'jackpot' is not allowed"] if "jackpot" in text.lower() else []


@pytest.mark.parametrize("plugin_class", [RejectsJackpot, RejectsJackpotAsync], ids=["sync", "async"])
async def test_hook_smslab_moderate_content(service, plugin_class):
    plugin = plugin_class()
    api = await service(plugin)
    bad = await api.send("Win the JACKPOT today", name="bad")
    good = await api.send("Your code is 1234", name="good")
    assert bad["status"] == "moderating"
    await api.advance(60)
    bad, good = await api.task(bad["id"]), await api.task(good["id"])
    assert bad["status"] == "rejected"
    assert "the word 'jackpot' is not allowed" in bad["status_reason"]
    assert good["status"] == "completed", good
    texts = {task["name"]: text for text, task in plugin.seen}
    assert texts["bad"] == "【smslab】Win the JACKPOT today"  # the full text, signature included
    assert {t["platform"] for _, t in plugin.seen} == {"sim"}


async def test_moderation_reasons_of_platform_and_plugin_are_all_kept(service):
    api = await service(RejectsJackpot())
    await api.call("PATCH", "/api/v1/simulator/profile", {"moderation": {"banned_words": ["lottery"], "review_seconds": 0}})
    task = await api.send("lottery jackpot", name="both")
    await api.advance(1)
    detail = await api.task(task["id"])
    assert detail["status"] == "rejected"
    assert "jackpot" in detail["status_reason"] and "lottery" in detail["status_reason"]


# -- smslab_filter_numbers -------------------------------------------------------------------------------
class Blocklist:
    def __init__(self, blocked):
        self.blocked = set(blocked)
        self.calls: list[tuple[dict, list[str]]] = []

    @hookimpl
    def smslab_filter_numbers(self, task, numbers):
        self.calls.append((task, list(numbers)))
        return {n: "blocklisted" for n in numbers if n in self.blocked}


class BlocklistAsync(Blocklist):
    @hookimpl
    async def smslab_filter_numbers(self, task, numbers):
        self.calls.append((task, list(numbers)))
        return {n: "blocklisted" for n in numbers if n in self.blocked}


@pytest.mark.parametrize("plugin_class", [Blocklist, BlocklistAsync], ids=["sync", "async"])
async def test_hook_smslab_filter_numbers(service, plugin_class):
    plugin = plugin_class(NUMBERS[:2])
    api = await service(plugin)
    task = await api.send()
    await api.advance(10)
    detail = await api.task(task["id"])
    assert detail["status"] == "completed", detail
    assert detail["skipped"].get("blocklisted") == 2
    assert detail["sent"] == len(NUMBERS) - 2 == detail["succeeded"]
    assert detail["audience_size"] == detail["sent"] + sum(detail["skipped"].values())
    assert plugin.calls and plugin.calls[0][0]["id"] == task["id"]
    assert sorted(n for _, batch in plugin.calls for n in batch) == sorted(NUMBERS)  # E.164


# -- smslab_receipts_committed ----------------------------------------------------------------------------
class ReceiptObserver:
    def __init__(self):
        self.batches: list[tuple[str, list[Receipt]]] = []

    @hookimpl
    def smslab_receipts_committed(self, platform, receipts):
        self.batches.append((platform, list(receipts)))


class ReceiptObserverAsync(ReceiptObserver):
    @hookimpl
    async def smslab_receipts_committed(self, platform, receipts):
        self.batches.append((platform, list(receipts)))


class FailingObserver:
    @hookimpl
    def smslab_receipts_committed(self, platform, receipts):
        raise RuntimeError("an observer that breaks")


@pytest.mark.parametrize("plugin_class", [ReceiptObserver, ReceiptObserverAsync], ids=["sync", "async"])
async def test_hook_smslab_receipts_committed(service, plugin_class):
    observer = plugin_class()
    api = await service(observer)
    task = await api.send()
    await api.advance(10)
    detail = await api.task(task["id"])
    assert detail["succeeded"] == len(NUMBERS)
    receipts = [r for platform, batch in observer.batches for r in batch if platform == "sim"]
    assert len(receipts) == len(NUMBERS)
    assert all(isinstance(r, Receipt) and r.status == "delivered" for r in receipts)
    assert len({r.platform_id for r in receipts}) == len(NUMBERS)


async def test_failing_receipt_observer_loses_nothing(service):
    api = await service(FailingObserver())
    task = await api.send()
    await api.advance(10)
    detail = await api.task(task["id"])
    assert detail["status"] == "completed" and detail["succeeded"] == len(NUMBERS), detail


# -- smslab_task_status_changed ---------------------------------------------------------------------------
class StatusObserver:
    def __init__(self):
        self.changes: list[tuple[int, str, str, str | None]] = []

    @hookimpl
    def smslab_task_status_changed(self, task_id, old, new, reason):
        self.changes.append((task_id, old, new, reason))


class StatusObserverAsync(StatusObserver):
    @hookimpl
    async def smslab_task_status_changed(self, task_id, old, new, reason):
        self.changes.append((task_id, old, new, reason))


@pytest.mark.parametrize("plugin_class", [StatusObserver, StatusObserverAsync], ids=["sync", "async"])
async def test_hook_smslab_task_status_changed(service, plugin_class):
    observer = plugin_class()
    api = await service(observer)
    await api.call("PATCH", "/api/v1/simulator/profile", {"moderation": {"banned_words": ["lottery"]}})
    ok = await api.send(name="ok")
    rejected = await api.send("lottery", name="rejected")
    await api.advance(10)
    assert [(old, new) for tid, old, new, _ in observer.changes if tid == ok["id"]] == [
        ("moderating", "scheduled"), ("scheduled", "sending"), ("sending", "completed"),
    ]
    [(tid, old, new, reason)] = [c for c in observer.changes if c[0] == rejected["id"]]
    assert (old, new) == ("moderating", "rejected") and "lottery" in reason


# -- smslab_register_routes --------------------------------------------------------------------------------
class ExtraRoutes:
    @hookimpl
    def smslab_register_routes(self):
        async def ping(request: web.Request) -> web.Response:
            return web.json_response({"pong": True, "platforms": sorted(request.app[platforms_key])})

        return [web.get("/api/v1/x-hooktest/ping", ping)]


async def test_hook_smslab_register_routes(service):
    api = await service(ExtraRoutes())
    data = await api.call("GET", "/api/v1/x-hooktest/ping")
    assert data["pong"] is True and "sim" in data["platforms"]
    # plugin routes sit behind the same bearer-token middleware as the rest of /api/v1
    resp = await api.client.get("/api/v1/x-hooktest/ping")
    assert resp.status == 401


# -- smslab_inbound_message --------------------------------------------------------------------------------
class InboundObserver:
    def __init__(self):
        self.seen: list[tuple[str, InboundMessage, int | None, bool]] = []

    @hookimpl
    def smslab_inbound_message(self, platform, message, workspace_id, opted_out):
        self.seen.append((platform, message, workspace_id, opted_out))


class InboundObserverAsync(InboundObserver):
    @hookimpl
    async def smslab_inbound_message(self, platform, message, workspace_id, opted_out):
        self.seen.append((platform, message, workspace_id, opted_out))


class BrokenInboundObserver:
    @hookimpl
    def smslab_inbound_message(self, message):
        raise RuntimeError("an observer that breaks")


@pytest.mark.parametrize("plugin_class", [InboundObserver, InboundObserverAsync], ids=["sync", "async"])
async def test_hook_smslab_inbound_message(service, plugin_class):
    observer = plugin_class()
    api = await service(observer)
    stop = await api.call("POST", "/api/v1/simulator/mo", {"from": "138 0013 0001", "text": "Stop please"}, status=201)
    hello = await api.call("POST", "/api/v1/simulator/mo", {"from": NUMBERS[1], "text": "hello", "to": "1069"}, status=201)
    assert [(p, m.sender, m.text, opted) for p, m, _, opted in observer.seen] == [
        ("sim", NUMBERS[0], "Stop please", True), ("sim", NUMBERS[1], "hello", False)]
    assert all(isinstance(m, InboundMessage) for _, m, _, _ in observer.seen)
    assert [m.platform_id for _, m, _, _ in observer.seen] == [stop["platform_id"], hello["platform_id"]]
    assert observer.seen[1][1].recipient == "1069"
    assert {ws for _, _, ws, _ in observer.seen} == {stop["workspace_id"]} and stop["workspace_id"] is not None
    # called after the message and its opt-out were stored: the next task skips the number
    task = await api.send(numbers=NUMBERS)
    await api.advance(10)
    detail = await api.task(task["id"])
    assert detail["skipped"]["opted_out"] == 1 and detail["sent"] == len(NUMBERS) - 1


async def test_failing_inbound_observer_loses_nothing(service):
    api = await service(BrokenInboundObserver())
    reply = await api.call("POST", "/api/v1/simulator/mo", {"from": NUMBERS[0], "text": "STOP"}, status=201)
    assert reply["opted_out"] is True
    assert (await api.call("GET", "/api/v1/inbound"))["items"] == [reply]
    assert [e["number"] for e in (await api.call("GET", "/api/v1/opt-outs"))["items"]] == [NUMBERS[0]]


# -- the plugin manager ------------------------------------------------------------------------------------
def test_smslab_plugins_env_limits_entry_points(monkeypatch):
    monkeypatch.setenv("SMSLAB_PLUGINS", "")
    assert not any(name == "sim" for name, _ in build_plugin_manager().list_name_plugin())
    monkeypatch.setenv("SMSLAB_PLUGINS", "sim")
    assert "sim" in dict(build_plugin_manager().list_name_plugin())
    monkeypatch.delenv("SMSLAB_PLUGINS")
    assert "sim" in dict(build_plugin_manager().list_name_plugin())



class BrokenStatusObserver:
    @hookimpl
    def smslab_task_status_changed(self, task_id, old, new, reason):
        raise RuntimeError("an observer that breaks")


async def test_failing_status_observer_does_not_strand_tasks(service):
    api = await service(BrokenStatusObserver())
    task = await api.send()
    await api.advance(10)
    detail = await api.task(task["id"])
    assert detail["status"] == "completed", detail


def test_hook_smslab_register_commands(monkeypatch, capsys):
    """A plugin's command becomes `smslab <name>`; the simulated carrier's `smslab carrier` comes
    the same way, so leaving the sim plugin out (SMSLAB_PLUGINS) leaves the command out."""
    import subprocess
    import sys

    from gateway import cli, plugins

    class AcmeCommands:
        @hookimpl
        def smslab_register_commands(self, subparsers):
            acme = subparsers.add_parser("acme-status", help="the acme queue")
            acme.add_argument("--host", default="127.0.0.1")
            acme.set_defaults(func=lambda args: print(f"acme on {args.host}: empty") or 3)

    real = plugins.build_plugin_manager

    def with_acme(load_entrypoints: bool = True):
        pm = real(load_entrypoints)
        pm.register(AcmeCommands())
        return pm

    monkeypatch.setattr(plugins, "build_plugin_manager", with_acme)
    assert cli.main(["acme-status", "--host", "10.0.0.9"]) == 3
    assert capsys.readouterr().out == "acme on 10.0.0.9: empty\n"

    def helps(env_plugins: str | None) -> str:
        env = {k: v for k, v in __import__("os").environ.items() if k != "SMSLAB_PLUGINS"}
        if env_plugins is not None:
            env["SMSLAB_PLUGINS"] = env_plugins
        return subprocess.run([sys.executable, "-m", "gateway.cli", "--help"], env=env, capture_output=True,
                              text=True, check=True).stdout

    def commands(env_plugins: str | None) -> set[str]:  # the usage line: {serve,token,...}
        return set(helps(env_plugins).split("{", 1)[1].split("}", 1)[0].split(","))

    assert "carrier" in commands(None)
    assert "carrier" not in commands("http")
    assert {"serve", "token"} <= commands("http")
