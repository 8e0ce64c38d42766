"""The load tests and benchmarks must not rot: import the locustfiles, run every benchmark at a
tiny size, and run one short headless locust against a real server (exit code from thresholds)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADTESTS = ROOT / "loadtests"

# locust is never imported in this process: importing it monkey-patches sockets and threads with
# gevent, which would hang every asyncio/aiosqlite test collected after this module
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed (pip install -e '.[load]')", allow_module_level=True)


def _bench(*args: str, timeout: float = 240) -> str:
    proc = subprocess.run([sys.executable, "-m", "loadtests.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "same-run baseline" in proc.stdout and "ratio" in proc.stdout, proc.stdout
    return proc.stdout


@pytest.mark.parametrize("name", ["locustfile_marketer", "locustfile_receipts"])
def test_locustfiles_import(name):
    check = (
        f"import sys; sys.path.insert(0, {str(LOADTESTS)!r}); import {name} as m; "
        "users = [v for v in vars(m).values() if isinstance(v, type) and getattr(v, 'tasks', None)"
        " and not v.__dict__.get('abstract')]; print(len(users))"
    )
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) > 0, f"{name} defines no user class"


def test_bench_pipeline_tiny():
    out = _bench("pipeline", "--numbers", "2000")
    assert "numbers/s" in out and "peak RSS" in out


def test_bench_ingest_tiny():
    out = _bench("ingest", "--receipts", "5000", "--concurrency", "4")
    assert "receipts/s committed" in out


@pytest.mark.parametrize("bench,size", [("pipeline", ["--numbers", "2000"]), ("ingest", ["--receipts", "5000", "--concurrency", "4"])])
def test_bench_both_backends_tiny(bench, size):
    """``--backend both``: SQLite, then the same on a scratch PostgreSQL database, then the table
    of both figures against both floors."""
    from tests import pg_support

    if not pg_support.enabled():  # as the suite's other PostgreSQL tests: unreachable fails, opting out skips
        pytest.skip(f"PostgreSQL tests switched off ({pg_support.OPT_OUT}=0)")
    out = _bench(bench, *size, "--backend", "both")
    assert "(--backend postgres)" in out and "SQLite and PostgreSQL, same run" in out, out
    assert "| sqlite " in out and "| postgres " in out and "PostgreSQL within 2× of its floor" in out, out


@pytest.mark.parametrize("tool", ["aiohttp", "wrk"])
def test_bench_webhooks_tiny(tool):
    if tool == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    out = _bench("webhooks", "--seconds", "2", "--connections", "8", "--messages", "5000", "--tool", tool)
    assert "single-receipt POSTs/s" in out


def test_bench_api_tiny():
    out = _bench("api", "--tasks", "200", "--messages", "5000", "--requests", "30")
    assert "task detail p50 / p99" in out


def test_gil_contention_prints_its_table(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "loadtests.gil_contention", "--rows", "2000", "--dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for case in ("alone", "next to Python", "two at once"):
        assert f"| {case}" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # its databases are removed


def test_stages_replay_every_stage_and_split_the_sink():
    """The replay asserts itself that every receipt found its message and every number was
    counted; here: it runs, and prints each stage and the sink's SQL beside its Python."""
    proc = subprocess.run([sys.executable, "-m", "loadtests.stages", "--batches", "6"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for line in ("| carrier: decide |", "| gateway: apply receipts |", "| `UPDATE messages SET …` |", "| Python (folding, encoding) |"):
        assert line in proc.stdout
    assert "6,000 numbers" in proc.stdout


def test_locust_headless_firehose_sets_exit_code(tmp_path):
    """A 4-second headless firehose against a real server writes CSV + HTML and exits 0; an
    impossible threshold makes it exit 1."""
    sys.path.insert(0, str(ROOT))
    from loadtests import harness as H

    from tests.pg_support import db_target

    db = db_target(tmp_path, "locust.db")
    with H.smslab_server(db) as proc:
        base = [sys.executable, "-m", "locust", "-f", str(LOADTESTS / "locustfile_receipts.py"), "ReceiptFirehose",
                "--host", proc.base, "--token", proc.token, "--headless", "-u", "2", "-r", "2", "-t", "4s",
                "--receipt-numbers", "2000", "--receipt-batch", "200", "--only-summary"]
        ok = subprocess.run([*base, "--csv", str(tmp_path / "run"), "--html", str(tmp_path / "run.html")],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert (tmp_path / "run_stats.csv").is_file() and (tmp_path / "run.html").is_file()
        strict = subprocess.run([*base, "--max-p95-ms", "0.001", "--receipt-task", "1"], cwd=ROOT, capture_output=True,
                                text=True, timeout=180)
        assert strict.returncode == 1, strict.stdout + strict.stderr
