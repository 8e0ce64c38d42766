"""``smslab plugin new NAME``: write a working platform plugin distribution to start from.

The result, ``smslab-NAME/``, is a pip-installable distribution: a ``pyproject.toml`` with the
entry point ``[project.entry-points.smslab] NAME = "smslab_NAME.plugin"``, a package with a
Platform subclass that accepts every message and reports it delivered a little later on the
service clock (keeping its state in its own store, ``ctx.store``, so it is idempotent across
restarts), a README, and tests that run the conformance suite
(:mod:`gateway.testing.conformance`) and check that the entry point loads.

Also runnable on its own: ``python -m gateway.scaffold new NAME [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "smslab-{name}"
version = "0.1.0"
description = "The {name} SMS platform for smslab"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["smslab"]

[project.optional-dependencies]
test = ["pytest>=8"]

# smslab finds plugins through this entry-point group; the name is the plugin's name
# (the one SMSLAB_PLUGINS lists), the value the module holding its hook implementations.
[project.entry-points.smslab]
{name} = "{module}.plugin"

[tool.setuptools.packages.find]
include = ["{module}*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''\
# smslab-{name}

The `{name}` SMS platform for [smslab](https://github.com/) — written by `smslab plugin new {name}`.

Out of the box it accepts every message and reports it `delivered` {delay:g} seconds later on the
gateway's clock. Replace the body of `{module}/platform.py` with calls to your carrier or SMS
vendor; docs/plugins.md in smslab describes the Platform interface and every hook.

## Install into the environment that runs smslab

```sh
pip install -e .
smslab serve            # GET /api/v1/platforms now lists "{name}"
```

Create a task with `"platform": "{name}"` to send through it. To load only some plugins, set
`SMSLAB_PLUGINS` to a comma-separated list of entry-point names (e.g. `SMSLAB_PLUGINS=sim,{name}`).

## Test

```sh
pip install -e '.[test]'
python -m pytest
```

`tests/test_conformance.py` runs smslab's platform conformance suite
(`gateway.testing.conformance.PlatformConformance`) against the platform: results per item,
idempotent resubmission (also after a restart), receipts that name submitted messages, no
receipt lost when the gateway fails to commit a hand-off, clean refusals of bad input.
'''

INIT = '''\
"""The {name} SMS platform for smslab."""

from .platform import {cls}

__all__ = ["{cls}"]
'''

PLUGIN = '''\
"""Hook implementations of the {name} plugin (entry point ``smslab: {name}``).

See docs/plugins.md in smslab for every hook you can implement here.
"""

from gateway.hookspecs import hookimpl

from .platform import {cls}


@hookimpl
def smslab_register_platforms(config):
    return [{cls}()]
'''

PLATFORM = '''\
"""The {name} platform.

It accepts every message and reports it delivered ``receipt_delay`` seconds later on the
service clock. Its state lives in the platform's own store (``ctx.store``: keys and JSON values
in a namespace of its own, kept by the gateway), so:

- the same idempotency key submitted twice (the gateway resubmits after a crash) gets the
  same platform id and is not sent twice, even by a restarted process (``k:{{key}}``);
- a receipt waits under ``due:{{time}}:{{platform id}}`` (keys sort by time) and is removed only
  after ``ctx.deliver_receipts`` returned, i.e. after the gateway committed it; if the hand-off
  fails, the next ``on_clock`` offers it again.

Replace ``submit`` with a call to your carrier (raise ``PlatformError`` or ``Throttled`` when
the whole batch is refused, set ``error_code`` on a result for one refused number) and
``on_clock`` with polling its delivery reports, or implement ``parse_webhook`` if it pushes
them to ``POST /api/v1/platforms/{name}/receipts``.
"""

from __future__ import annotations

from gateway.platform import Platform, PlatformContext, Receipt, SubmitItem, SubmitResult

EMIT_BATCH = 1000


def _due_key(due_at: float, platform_id: str) -> str:
    return f"due:{{due_at:020.6f}}:{{platform_id}}"  # fixed width: the store's key order is time order


class {cls}(Platform):
    name = "{name}"
    description = "The {name} platform: accepts every message, delivered {delay:g} s later (scaffold)."
    receipt_delay = {delay!r}

    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        if not batch:
            return []
        store = self.ctx.store
        known = await store.get_many([f"k:{{item.key}}" for item in batch])  # one read for the batch
        due_at = self.ctx.clock.now() + self.receipt_delay
        results, new = [], {{}}
        for item in batch:
            if not item.number.startswith("+") or not item.number[1:].isdigit():
                results.append(SubmitResult(item.key, error_code="INVALID_NUMBER",
                                            error_message=f"not an E.164 number: {{item.number!r}}"))
                continue
            seen = known.get(f"k:{{item.key}}")
            if seen is not None:  # sent before (a resubmission after a crash): same id, not sent again
                results.append(SubmitResult(item.key, seen))
                continue
            platform_id = f"{name}-{{item.key}}"
            new[f"k:{{item.key}}"] = platform_id
            new[_due_key(due_at, platform_id)] = [platform_id, max(1, item.parts), due_at]
            results.append(SubmitResult(item.key, platform_id))
        await store.put_many(new)  # one transaction, before the gateway records the batch
        return results

    async def on_clock(self, now: float) -> None:
        store = self.ctx.store
        while True:
            page = await store.scan("due:", limit=EMIT_BATCH)
            due = [(key, value) for key, value in page if value[2] <= now]
            if not due:
                return
            receipts = [
                Receipt(platform_id=pid, status="delivered", at=at, part=(part if parts > 1 else None))
                for _, (pid, parts, at) in due
                for part in range(parts)
            ]
            await self.ctx.deliver_receipts(self.name, receipts)  # returns once committed
            await store.delete_many([key for key, _ in due])
            if len(due) < EMIT_BATCH:
                return

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="in-process", receipt_delay_seconds=self.receipt_delay)
        return info
'''

TEST_CONFORMANCE = '''\
"""smslab's platform conformance suite, run against the {name} platform."""

import pytest

from gateway.testing.conformance import PlatformConformance
from {module}.platform import {cls}


class Test{cls}Conformance(PlatformConformance):
    min_receipt_share = 1.0  # this platform reports every message

    @pytest.fixture
    def platform_factory(self):
        return {cls}
'''

TEST_PLUGIN = '''\
"""The installed distribution registers the {name} platform through its entry point."""

from gateway.plugins import build_plugin_manager


def test_entry_point_registers_the_platform(monkeypatch):
    monkeypatch.setenv("SMSLAB_PLUGINS", "{name}")
    pm = build_plugin_manager()
    platforms = [p for group in pm.hook.smslab_register_platforms(config=None) for p in group or []]
    assert [p.name for p in platforms] == ["{name}"]
'''

GITIGNORE = "__pycache__/\n*.egg-info/\n.pytest_cache/\nbuild/\ndist/\n"


class ScaffoldError(ValueError):
    pass


def names_for(name: str) -> dict[str, str]:
    if not NAME_RE.match(name):
        raise ScaffoldError(
            f"plugin name {name!r}: use lowercase letters, digits, '-' or '_', starting with a letter (at most 40)"
        )
    ident = name.replace("-", "_")
    if keyword.iskeyword(ident):
        raise ScaffoldError(f"plugin name {name!r} is a Python keyword")
    cls = "".join(part.capitalize() for part in ident.split("_") if part) + "Platform"
    return {"name": name, "module": f"smslab_{ident}", "cls": cls}


def render(name: str, delay: float = 1.0) -> dict[str, str]:
    """The files of the distribution, by path relative to its folder."""
    v = names_for(name)
    fmt = dict(v, delay=delay)
    module = v["module"]
    return {
        "pyproject.toml": PYPROJECT.format(**fmt),
        "README.md": README.format(**fmt),
        ".gitignore": GITIGNORE,
        f"{module}/__init__.py": INIT.format(**fmt),
        f"{module}/plugin.py": PLUGIN.format(**fmt),
        f"{module}/platform.py": PLATFORM.format(**fmt),
        "tests/test_conformance.py": TEST_CONFORMANCE.format(**fmt),
        "tests/test_plugin.py": TEST_PLUGIN.format(**fmt),
    }


def create(name: str, directory: str | Path = ".", *, force: bool = False) -> Path:
    """Write ``smslab-NAME/`` under ``directory``; returns its path."""
    files = render(name)
    target = Path(directory) / f"smslab-{name}"
    if target.exists() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} already exists and is not empty (use --force to overwrite)")
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _new(args: argparse.Namespace) -> int:
    try:
        target = create(args.name, args.dir, force=args.force)
    except ScaffoldError as exc:
        print(f"smslab: {exc}", file=sys.stderr)
        return 2
    module = names_for(args.name)["module"]
    print(f"Wrote the plugin distribution smslab-{args.name} to {target}")
    print(f"  {target}/{module}/platform.py   the platform: replace submit/on_clock with your carrier")
    print(f"  {target}/tests/                 the conformance suite and an entry-point check")
    print("Next:")
    print(f"  pip install -e '{target}[test]'")
    print(f"  cd {target} && python -m pytest")
    return 0


def add_plugin_commands(subparsers) -> None:
    """Add ``plugin new NAME [--dir PATH] [--force]`` to the ``smslab`` command line."""
    plugin = subparsers.add_parser("plugin", help="plugin developer tools")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", required=True)
    _add_new(plugin_sub)


def _add_new(subparsers) -> None:
    new = subparsers.add_parser("new", help="write a new platform plugin distribution (smslab-NAME)")
    new.add_argument("name", help="the plugin and platform name (lowercase letters, digits, - or _)")
    new.add_argument("--dir", default=".", help="folder to create smslab-NAME in (default: the current folder)")
    new.add_argument("--force", action="store_true", help="overwrite the files of an existing smslab-NAME folder")
    new.set_defaults(func=_new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.scaffold", description="smslab plugin developer tools")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_new(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
