"""Meta-tests in the manner of Datasette's: every hook in gateway/hookspecs.py is documented in
docs/plugins.md under a heading that is its exact signature, and has a ``test_hook_<name>`` in
tests/test_plugin_hooks.py; every method of the Platform interface is documented too."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from gateway import hookspecs
from gateway.platform import Platform

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
HOOK_TESTS = ROOT / "tests" / "test_plugin_hooks.py"


def _hooks() -> dict[str, str]:
    """hook name -> signature as written in the docs heading, e.g. ``smslab_x(a, b)``."""
    out = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("smslab_") and hasattr(fn, "smslab_spec"):
            params = ", ".join(inspect.signature(fn).parameters)
            out[name] = f"{name}({params})"
    return out


HOOKS = _hooks()
PLATFORM_METHODS = sorted(
    name for name, member in vars(Platform).items() if callable(member) and not name.startswith("_")
)


def _headings(level: str) -> list[str]:
    return [line[len(level) + 1:].strip().strip("`") for line in DOCS.read_text().splitlines() if line.startswith(level + " ")]


def _section(heading: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"### {heading}\n")
    end = text.find("\n## ", start + 1)
    nxt = text.find("\n### ", start + 1)
    ends = [e for e in (end, nxt) if e != -1]
    return text[start : min(ends) if ends else len(text)]


def test_hookspecs_found():
    assert len(HOOKS) >= 6, HOOKS
    assert all(fn.__doc__ for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name in HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_is_documented(hook):
    signature = HOOKS[hook]
    headings = _headings("###")
    assert signature in headings, f"docs/plugins.md needs a heading '### {signature}' (found {[h for h in headings if h.startswith(hook)]})"
    section = _section(signature)
    for part in ("**When:**", "**Arguments:**", "**Returns:**", "**Example:**", "```python", "@hookimpl"):
        assert part in section, f"the section of {hook} in docs/plugins.md lacks {part!r}"
    for param in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{param}`" in section, f"the section of {hook} does not describe the argument {param!r}"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_has_a_test(hook):
    tree = ast.parse(HOOK_TESTS.read_text())
    names = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert f"test_hook_{hook}" in names, f"tests/test_plugin_hooks.py needs a test named test_hook_{hook}"


def test_documented_hooks_exist():
    """No stale docs: every smslab_ heading is a real hook with that signature."""
    documented = [h for h in _headings("###") if h.startswith("smslab_")]
    assert sorted(documented) == sorted(HOOKS.values())


@pytest.mark.parametrize("method", PLATFORM_METHODS)
def test_platform_method_is_documented(method):
    params = [p for p in inspect.signature(getattr(Platform, method)).parameters if p != "self"]
    heading = f"{method}({', '.join(params)})"
    assert heading in _headings("###"), f"docs/plugins.md needs a heading '### {heading}' under the Platform interface"


def test_docs_cover_packaging_and_conformance():
    text = DOCS.read_text()
    for needle in ("[project.entry-points.smslab]", "SMSLAB_PLUGINS", "PlatformConformance", "platform_factory",
                   "smslab plugin new", "call_async", 'pytest_plugins = ["gateway.testing.conformance"]'):
        assert needle in text, needle
    documented_tests = set(re.findall(r"`(test_[a-z_]+)`", text))
    from gateway.testing.conformance import PlatformConformance

    suite = {n for n in dir(PlatformConformance) if n.startswith("test_")}
    assert suite <= documented_tests, f"conformance tests missing from docs/plugins.md: {sorted(suite - documented_tests)}"
