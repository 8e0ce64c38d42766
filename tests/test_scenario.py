"""Scenarios (`smslab scenario run|check`): the shipped examples pass through the real command line,
a wrong expectation fails with expected/actual, broken files are refused with the right line,
a replay gives the same output, and --url/--token plays against a running service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.scenario import ScenarioError, loads
from gateway.scenario.runner import generate, private_gateway
from gateway.scenario.timespec import TimeSpecError, format_duration, format_tod, parse_at, parse_duration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "scenarios").glob("*.toml"))
START = 1_714_521_600.0  # 2024-05-01T00:00:00Z


def smslab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


# -- the shipped examples, through the command line -------------------------------------------
def test_three_examples_are_shipped():
    assert {p.name for p in EXAMPLES} >= {"evening-outage.toml", "receipt-storm.toml", "receipts-stop.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_scenario_passes(path):
    result = smslab("scenario", "run", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "passed" in lines[-1] and "FAILED" not in result.stdout
    assert sum(" step " in line and " expect" in line and "... ok" in line for line in lines) >= 4
    assert any("expect_ground_truth" in line for line in lines)


def test_examples_check_clean():
    result = smslab("scenario", "check", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok, ") == len(EXAMPLES)


def test_a_scenario_replays_the_same_outcome(tmp_path):
    """Each run gets a fresh private service; the printed steps, counts and summary are identical."""
    path = ROOT / "docs" / "scenarios" / "receipt-storm.toml"
    first, second = smslab("scenario", "run", str(path)), smslab("scenario", "run", str(path))
    assert first.returncode == second.returncode == 0, first.stdout + second.stdout
    assert first.stdout == second.stdout
    final = [line for line in first.stdout.splitlines() if line.strip().startswith("task storm:")]
    assert final and "duplicate_receipts=716" in final[0]


WRONG = """\
name = "wrong on purpose"
start = "2024-05-01T09:00:00Z"

[[step]]
profile = { seed = 3, outcomes = { delivered = 1, failed = 0, missing = 0 }, moderation = { review_seconds = 0 } }

[[step]]
audience = { name = "a", numbers = ["+8613800000001", "+8613800000002", "+15005550010"] }

[[step]]
task = { name = "t", audience = "a", text = "Hello" }

[[step]]
advance = "10m"

[[step]]
expect = { task = "t", status = "completed", counts = { succeeded = 3, failed = 0 } }

[[step]]
expect_ground_truth = "t"
"""


def test_a_wrong_expectation_exits_1_with_expected_and_actual(tmp_path):
    path = tmp_path / "wrong.toml"
    path.write_text(WRONG)
    result = smslab("scenario", "run", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "step 5 expect" in out and "FAILED" in out
    assert "succeeded: expected 3, actual 2" in out
    assert "failed: expected 0, actual 1" in out
    assert "step 6 expect_ground_truth t: 3 numbers" in out and out.splitlines()[-2].startswith("scenario wrong on purpose: FAILED")
    assert f"{path}:16: step 5" in out


def test_a_step_the_service_refuses_exits_3(tmp_path):
    path = tmp_path / "bad-reply.toml"
    path.write_text('[[step]]\npreset = "perfect"\n\n[[step]]\nafter = "1m"\nreply = { from = "not a number", text = "STOP" }\n')
    result = smslab("scenario", "run", str(path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"{path}:4: step 2: POST /api/v1/simulator/mo answered 400" in result.stdout
    assert "stopped at step 2 of 2" in result.stdout


# -- check: broken files, with line numbers ----------------------------------------------------
BROKEN = {
    "syntax": ('[[step]]\nadvance = "1h"\n\n[[step]]\nadvance = = "2h"\n', 5, "invalid TOML"),
    "unknown kind": ('[[step]]\nadvance = "1h"\n\n[[step]]\nat = "10:00"\nteleport = "mars"\n', 6,
                     "step 2: field 'teleport': unknown step field 'teleport'"),
    "bad duration": ('[[step]]\nadvance = "1h"\n\n[[step]]\nnote = "x"\nadvance = "3 hours"\n', 6,
                     "step 2: field 'advance': a duration such as"),
    "missing field": ('name = "m"\n\n[[step]]\nadvance = "1h"\n\n[[step]]\naudience = { numbers = ["+8613800000001"] }\n', 7,
                      "step 2: field 'audience': Object missing required field `name`"),
    "two actions": ('[[step]]\npreset = "perfect"\nadvance = "1h"\n', 3, "one action per step"),
    "time going back": ('[[step]]\nat = "10:00"\npreset = "perfect"\n\n[[step]]\nat = "09:30"\npreset = "flaky"\n', 6,
                        "09:30 is before"),
    "undefined task": ('[[step]]\npreset = "perfect"\n\n[[step]]\n[step.expect]\ntask = "ghost"\n', 6,
                       "no task 'ghost'"),
    "bad count name": ('[[step]]\naudience = { name = "a", numbers = ["+8613800000001"] }\n[[step]]\ntask = { name = "t", audience = "a", text = "x" }\n'
                       '[[step]]\n[step.expect]\ntask = "t"\n[step.expect.counts]\nsent = 1\ndelivered = 1\n', 10, "unknown count 'delivered'"),
    "unknown preset": ('[[step]]\nadvance = "1h"\n[[step]]\npreset = "sunny"\n', 4, "no preset 'sunny'; the presets are"),
    "bad time": ('[[step]]\nat = "25:00"\npreset = "perfect"\n', 2, "field 'at': a time of day"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_reports_the_line(case):
    text, line, words = BROKEN[case]
    with pytest.raises(ScenarioError) as info:
        loads(text, "f.toml")
    first = info.value.errors[0]
    assert first.startswith(f"f.toml:{line}: "), (case, info.value.errors)
    assert words in first, (case, first)


def test_check_on_the_command_line_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN["bad duration"][0])
    good = ROOT / "docs" / "scenarios" / "receipt-storm.toml"
    result = smslab("scenario", "check", str(good), str(bad))
    assert result.returncode == 2
    assert f"{bad}:6: step 2: field 'advance'" in result.stderr
    assert "receipt-storm.toml: ok" in result.stdout
    run = smslab("scenario", "run", str(bad))
    assert run.returncode == 2 and f"{bad}:6:" in run.stderr


def test_url_and_token_go_together():
    result = smslab("scenario", "run", str(EXAMPLES[0]), "--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "--url and --token go together" in result.stderr


# -- against a running service -----------------------------------------------------------------
class Background:
    """A gateway on its own event loop in a thread, as another process would run it."""

    def __init__(self, folder: str, clock: str = "virtual"):
        self.folder, self.clock = folder, clock
        self.ready = threading.Event()

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = private_gateway(self.folder, START, clock=self.clock)
        self.url, self.token = asyncio.run_coroutine_threadsafe(self.gateway.__aenter__(), self.loop).result(30)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.gateway.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_run_against_a_running_service_with_url_and_token(tmp_path):
    path = ROOT / "docs" / "scenarios" / "receipts-stop.toml"
    private = smslab("scenario", "run", str(path))
    with Background(str(tmp_path)) as service:
        remote = smslab("scenario", "run", str(path), "--url", service.url, "--token", service.token)
        assert remote.returncode == 0, remote.stdout + remote.stderr
        # played on that service: its clock moved, its tasks exist
        again = smslab("scenario", "run", str(path), "--url", service.url, "--token", service.token)
        refused = smslab("scenario", "run", str(path), "--url", service.url, "--token", "not-a-token")
    assert refused.returncode == 2 and "401" in refused.stderr, refused.stderr
    assert private.stdout == remote.stdout
    assert again.returncode == 2 and "already at" in again.stderr  # its clock is past the scenario's start


def test_a_wall_clock_service_is_refused(tmp_path):
    with Background(str(tmp_path), clock="wall") as service:
        result = smslab("scenario", "run", str(EXAMPLES[0]), "--url", service.url, "--token", service.token)
    assert result.returncode == 2
    assert "wall clock" in result.stderr and "--clock virtual" in result.stderr


# -- the format's decoders ---------------------------------------------------------------------
def test_durations_and_times():
    assert parse_duration("72h") == 259200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5d") == 129600
    assert parse_duration(90) == 90
    assert parse_at("10:00") == ("tod", 36000)
    assert parse_at("23:59:59") == ("tod", 86399)
    assert parse_at("2024-05-01T10:00:00Z") == ("abs", START + 36000)
    for bad in ("", "10", "h", "-1h", "1h1h", "30m1h", "1 h", "1H", "∞s", "1e3s", True, None, -1, float("nan")):
        with pytest.raises(TimeSpecError):
            parse_duration(bad)
    for bad in ("24:00", "10:60", "1:00", "10:00:60", "noon", "2024-05-01", "", 10):
        with pytest.raises(TimeSpecError):
            parse_at(bad)


def test_generated_numbers_are_deterministic():
    from gateway.scenario.model import Generate

    numbers = generate(Generate(prefix="+8613800", count=3, first=998))
    assert numbers == ["+8613800000998", "+8613800000999", "+8613800001000"]
    assert len(generate(Generate(prefix="+1555", count=5, digits=7))[0]) == 12


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=30))
@settings(max_examples=300)
def test_duration_parser_takes_any_text(text):
    try:
        value = parse_duration(text)
    except TimeSpecError:
        return
    assert 0 <= value and value == value


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_time_parser_takes_any_text(text):
    try:
        kind, value = parse_at(text)
    except TimeSpecError:
        return
    assert kind in ("tod", "abs") and value >= 0
    if kind == "tod":
        assert value < 86400


@given(st.integers(min_value=0, max_value=86399))
def test_time_of_day_round_trips(seconds):
    assert parse_at(format_tod(seconds)) == ("tod", seconds)


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none()))
@settings(max_examples=200)
def test_a_step_with_any_advance_value_loads_or_is_refused_with_a_line(value):
    import json

    literal = json.dumps(value) if not isinstance(value, float) or value == value and abs(value) != float("inf") else '"x"'
    if value is None:
        literal = '"x"'
    text = f'[[step]]\npreset = "perfect"\n\n[[step]]\nadvance = {literal}\n'
    try:
        loads(text, "p.toml")
    except ScenarioError as exc:
        assert exc.errors and all(e.startswith(("p.toml:5: ", "p.toml:4: ")) for e in exc.errors), exc.errors


def test_unquoted_toml_times_work():
    text = textwrap.dedent("""\
        start = 2024-05-01T08:00:00Z
        [[step]]
        at = 10:00:00
        preset = "perfect"
    """)
    loaded = loads(text)
    assert loaded.start == START + 8 * 3600 and loaded.scenario.steps[0].at == "10:00:00"
