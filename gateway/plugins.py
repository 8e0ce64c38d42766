"""The plugin manager: hook specs, built-in plugins, then every ``smslab`` entry point.

``SMSLAB_PLUGINS`` (comma separated entry-point names) limits which entry-point plugins load;
unset, all load. Tests can ``pm.register(obj)`` a throwaway plugin and unregister it after.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import pluggy

from . import hookspecs


def build_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("smslab")
    pm.add_hookspecs(hookspecs)
    if not load_entrypoints:
        return pm
    allowed = os.environ.get("SMSLAB_PLUGINS")
    if allowed is None:
        pm.load_setuptools_entrypoints("smslab")
    else:
        names = {n.strip() for n in allowed.split(",") if n.strip()}
        for name in sorted(names):
            pm.load_setuptools_entrypoints("smslab", name=name)
    return pm


async def resolve(results: list[Any]) -> list[Any]:
    """Await whichever hook results are awaitables (async hook implementations)."""
    out = []
    for result in results:
        if inspect.isawaitable(result):
            result = await result
        out.append(result)
    return out


async def call_async(hook, **kwargs) -> list[Any]:
    return await resolve(hook(**kwargs))
