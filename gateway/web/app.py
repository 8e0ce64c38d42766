"""The app factory, used by ``smslab serve`` and by the tests alike."""

from __future__ import annotations

import dataclasses
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.audiences import Uploads
from gateway.auth import TokenCache
from gateway.clock import Clock, VirtualClock, WallClock
from gateway.config import Config
from gateway.inbound import InboundService
from gateway.metrics import Metrics
from gateway.pipeline.dispatcher import Dispatcher
from gateway.pipeline.engine import Engine
from gateway.pipeline.leadership import Leadership, instance_id
from gateway.pipeline.receipts import ReceiptSink
from gateway.pipeline.results import MessageResults
from gateway.platform import PlatformContext
from gateway.plugins import build_plugin_manager, call_async
from gateway.storage import open_storage
from gateway.tasks import TaskService

from . import cluster, middleware, protocol_errors, routes_api, routes_inbound, routes_system
from .cluster import close_forwarding, follow_clock, open_forwarding
from .keys import (clock_key, config_key, db_key, engine_key, inbound_key, leadership_key, metrics_key, platforms_key, pm_key,
                   sink_key, storage_key, tasks_key, tokens_key, uploads_key)

log = logging.getLogger(__name__)


def make_clock(config: Config) -> Clock:
    if config.clock == "virtual":
        return VirtualClock(config.clock_start, config.clock_rate)
    return WallClock()


async def _service(app: web.Application) -> AsyncIterator[None]:
    """Open the database, start platforms, the receipt sink and the engine; stop them in reverse."""
    config: Config = app[config_key]
    storage = open_storage(config.db_path)
    await storage.open()
    app[storage_key] = storage
    db = app[db_key] = storage.db  # the areas not yet behind the storage interface
    app[tokens_key] = TokenCache(storage.tokens)
    holder = instance_id()
    uploads = app[uploads_key] = Uploads(storage.audiences, storage.leases, holder)
    swept = await uploads.sweep(at_start=True)  # left by a killed process or a full disk
    if swept:
        log.warning("removed %d audience upload(s) left unfinished by an earlier run", swept)
    clock = app[clock_key]
    if clock.mode == "virtual" and config.clock_start is None:
        saved = await storage.state.virtual_now()
        if saved is not None:
            clock.resume(saved)
    elif clock.mode == "virtual":  # an explicit start instant is the shared timeline's from now on
        await storage.state.save_virtual_now(clock.now())
    metrics = app[metrics_key]
    pm = app[pm_key]

    engines: list[Engine] = []  # the engine starts after the platforms; their wake-ups reach it then

    def wake() -> None:
        if engines:
            engines[0].wake()

    async def committed(by_platform, tally):
        # receipts may come as soon as a platform starts (an SMSC sends what it held for us on
        # bind), before the engine exists: wake() reaches it once it does
        metrics.record_receipts(by_platform, tally)
        if tally.tasks:
            wake()
        for platform, receipts in by_platform.items():
            try:
                await call_async(pm.hook.smslab_receipts_committed, platform=platform, receipts=receipts)
            except Exception:  # an observer's failure must not fail receipts that are already committed
                log.exception("a smslab_receipts_committed hook failed")

    results = MessageResults(storage.messages, config)  # the one writer path for message results
    sink = ReceiptSink(results, clock, config, committed)
    app[sink_key] = sink
    sink.start()
    platforms = app[platforms_key]
    extras = dict(config.extras)
    inbound = app[inbound_key] = InboundService(storage.inbound, clock, pm, config)

    async def deliver_inbound(platform_name: str, messages: list, workspace_id: int | None = None) -> None:
        await inbound.deliver(platform_name, list(messages), workspace_id)

    ctx = PlatformContext(clock=clock, database=db, deliver_receipts=sink.deliver, config=config, extras=extras, wake=wake,
                          deliver_inbound=deliver_inbound)
    for platform in platforms.values():
        # each platform gets its own namespaced store; the rest of the context is shared
        await platform.start(dataclasses.replace(ctx, store=storage.platform_store(platform.name)))
    dispatcher = Dispatcher(storage, clock, platforms, pm, config, metrics, results, sink, optouts=inbound)
    engine = Engine(storage, clock, platforms, pm, config, metrics, dispatcher, results, maintenance=uploads.sweep)
    engines.append(engine)
    app[engine_key] = engine
    app[tasks_key] = TaskService(storage, clock, platforms, config, wake=engine.wake)
    await engine.start()

    async def lead() -> None:
        # the shared timeline, as the last leader saved it, then the platforms' shared state
        if clock.mode == "virtual" and storage.leases is not None:
            await follow_clock(clock, storage.state)
        await engine.save_clock()  # a fresh virtual clock's start, for the others and for a restart
        for platform in platforms.values():
            await platform.on_leadership()
        engine.lead()

    leadership = app[leadership_key] = Leadership(
        storage.leases, storage.state, advertised_url(config), config.lease_seconds, lead, engine.step_down, holder=holder)
    if leadership.shared:
        open_forwarding(app)
    await leadership.start()
    try:
        yield
    finally:
        await leadership.stop()
        await close_forwarding(app)
        await engine.stop()
        for platform in platforms.values():
            try:
                await platform.stop()
            except Exception:
                log.exception("platform %s failed to stop", platform.name)
        await sink.stop()
        await storage.close()


def advertised_url(config: Config) -> str:
    """Where the other instances reach this one (``SMSLAB_ADVERTISE_URL``, else host and port)."""
    if config.advertise_url:
        return config.advertise_url
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "::") else config.host
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.port}"


def create_app(config: Config | None = None, *, pm=None, clock: Clock | None = None) -> web.Application:
    config = config or Config.from_env()
    protocol_errors.install()
    app = web.Application(client_max_size=config.max_json_body,
                          middlewares=[middleware.errors, middleware.body_limit, middleware.auth,
                                       cluster.follow_the_leader])
    app[config_key] = config
    app[clock_key] = clock or make_clock(config)
    app[metrics_key] = Metrics()
    pm = pm or build_plugin_manager()
    app[pm_key] = pm
    platforms = {}
    for group in pm.hook.smslab_register_platforms(config=config):
        for platform in group or []:
            if platform.name in platforms:
                raise RuntimeError(f"two plugins register a platform named {platform.name!r}")
            platforms[platform.name] = platform
    app[platforms_key] = platforms
    app.add_routes(routes_api.routes)
    app.add_routes(routes_inbound.routes)
    app.add_routes(routes_system.routes)
    for extra in pm.hook.smslab_register_routes():
        if extra:
            app.add_routes(extra)
    app.router.add_static("/static/", routes_system.STATIC, show_index=False)
    app.cleanup_ctx.append(_service)
    return app
