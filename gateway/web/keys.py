"""Typed keys for everything the app holds (aiohttp AppKey)."""

from __future__ import annotations

import pluggy
from aiohttp import web

from gateway.audiences import Uploads
from gateway.auth import TokenCache
from gateway.clock import Clock
from gateway.config import Config
from gateway.inbound import InboundService
from gateway.metrics import Metrics
from gateway.pipeline.engine import Engine
from gateway.pipeline.leadership import Leadership
from gateway.pipeline.receipts import ReceiptSink
from gateway.storage.sqlite.db import Database
from gateway.tasks import TaskService

config_key = web.AppKey("config", Config)
clock_key = web.AppKey("clock", Clock)
db_key = web.AppKey("database", Database)
storage_key = web.AppKey("storage", object)
pm_key = web.AppKey("plugin_manager", pluggy.PluginManager)
platforms_key = web.AppKey("platforms", dict)
metrics_key = web.AppKey("metrics", Metrics)
engine_key = web.AppKey("engine", Engine)
sink_key = web.AppKey("sink", ReceiptSink)
tasks_key = web.AppKey("tasks", TaskService)
tokens_key = web.AppKey("tokens", TokenCache)
uploads_key = web.AppKey("uploads", Uploads)
inbound_key = web.AppKey("inbound", InboundService)
leadership_key = web.AppKey("leadership", Leadership)
