"""docs/testing.md cannot rot: every Python example in it is a test file, run here with pytester
the way its comment says (``<!-- doc-test: pytest ARGS -->``), and the GitHub Actions job's
shell step is run as written (on a free port) before the tests are pointed at it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.testing.pytest_plugin import free_port

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_outside_testbed(monkeypatch: pytest.MonkeyPatch):
    """The inner runs start their own processes unless a test says otherwise, whatever this
    shell's environment points at."""
    for name in ("SMSLAB_URL", "SMSLAB_TOKEN", "SMSLAB_CARRIER_URL", "SMSLAB_CARRIER_TOKEN", "SMSLAB_CARRIER_SMPP_PORT",
                 "SMSLAB_CARRIER_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)


DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
MARK = re.compile(r"<!-- doc-test: pytest(?P<args>[^>]*?)\s*(?:\((?P<note>[^)]*)\))?\s*-->")
INNER = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


def _blocks(lang: str) -> list[tuple[str, str]]:
    """(the marker's arguments, the code) of every ``lang`` block; a Python block without a marker
    fails here."""
    found, lines = [], DOC.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[i + 1:end]) + "\n"
        if fence.group(1) == lang:
            previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
            mark = MARK.search(previous)
            if lang == "python":
                assert mark, f"a Python example of docs/testing.md has no <!-- doc-test: ... --> comment:\n{body[:200]}"
            found.append(((mark.group("args") if mark else "").strip(), body))
        i = end + 1
    return found


EXAMPLES = _blocks("python")


def test_the_page_has_its_examples():
    assert len(EXAMPLES) >= 5
    assert any("smslab_carrier" in code and "smpplib" in code for _, code in EXAMPLES)
    assert any("{url}" in args for args, _ in EXAMPLES)


LOCAL = [e for e in EXAMPLES if "{url}" not in e[0]]


@pytest.mark.parametrize("args, code", LOCAL, ids=[re.search(r"def (test_\w+)", code).group(1) for _, code in LOCAL])
def test_each_example_passes(pytester: pytest.Pytester, args: str, code: str):
    pytester.makepyfile(test_example=code)
    result = pytester.runpytest(*INNER, *args.split())
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and not outcomes.get("failed") and not outcomes.get("errors"), result.stdout.str()


def test_the_github_actions_job_as_written(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The job's "start smslab" step, run by bash on a free port, then the example marked for a
    running gateway, pointed at it with --smslab-url and the token the step exported."""
    import yaml

    (_, job), = _blocks("yaml")
    steps = yaml.safe_load(job)["jobs"]["tests"]["steps"]
    start = next(step["run"] for step in steps if step.get("name") == "start smslab")
    assert any("--smslab-url http://127.0.0.1:8080" in step.get("run", "") for step in steps)
    port = free_port()
    pidfile, env_file = tmp_path / "pid", tmp_path / "github_env"
    script = start.replace("8080", str(port)).replace(" &\n", f" & echo $! > {pidfile}\n", 1)
    assert str(pidfile) in script
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(env_file),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        done = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        exported = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert exported["SMSLAB_TOKEN"].startswith("smslab_")
        (args, code), = [e for e in EXAMPLES if "{url}" in e[0]]
        monkeypatch.setenv("SMSLAB_TOKEN", exported["SMSLAB_TOKEN"])
        pytester.makepyfile(test_ci=code)
        result = pytester.runpytest(*INNER, args.format(url=f"http://127.0.0.1:{port}").split()[0])
        result.assert_outcomes(passed=1)
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(200):
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_readme_shows_the_ten_line_test_that_runs_here():
    """README.md's example is the page's first one (comments aside), so it is run above too."""
    readme = (DOC.parents[1] / "README.md").read_text()
    shown = re.search(r"## Using smslab from your own tests\n.*?```python\n(.*?)```", readme, re.S).group(1)

    def bare(code: str) -> str:
        return "\n".join(re.sub(r"\s+#.*$", "", line).rstrip() for line in code.strip().splitlines())

    assert bare(shown) == bare(EXAMPLES[0][1])
