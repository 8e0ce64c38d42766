"""Typed keys for everything the app holds (aiohttp AppKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway.auth import TokenCache
    from gateway.clock import Clock
    from gateway.config import Config
    from gateway.metrics import Metrics
    from gateway.pipeline.engine import Engine
    from gateway.pipeline.receipts import ReceiptSink
    from gateway.storage.db import Database
    from gateway.tasks import TaskService

config_key = web.AppKey("config", object)
clock_key = web.AppKey("clock", object)
db_key = web.AppKey("database", object)
pm_key = web.AppKey("plugin_manager", object)
platforms_key = web.AppKey("platforms", dict)
metrics_key = web.AppKey("metrics", object)
engine_key = web.AppKey("engine", object)
sink_key = web.AppKey("sink", object)
tasks_key = web.AppKey("tasks", object)
tokens_key = web.AppKey("tokens", object)
