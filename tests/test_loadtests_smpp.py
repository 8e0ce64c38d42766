"""The SMPP load tests must not rot: the benchmark at a tiny size prints its figures, the lean load
client runs on its own against the bare responder, and the locust user runs headless against a
real ``smslab carrier --smpp-port``, alone and distributed (exit codes from the thresholds).
Nothing here asserts on speed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADTESTS = ROOT / "loadtests"

# locust is never imported in this process (it monkey-patches sockets with gevent): only run
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed (pip install -e '.[load]')", allow_module_level=True)


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _helpers():
    sys.path.insert(0, str(ROOT))
    from loadtests import bench, harness

    return bench, harness


def test_locustfile_smpp_imports_a_user():
    check = (
        f"import sys; sys.path.insert(0, {str(LOADTESTS)!r}); import locustfile_smpp as m; "
        "users = [v for v in vars(m).values() if isinstance(v, type) and getattr(v, 'tasks', None)"
        " and not v.__dict__.get('abstract')]; print(len(users))"
    )
    proc = _run("-c", check, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) > 0


def test_bench_smpp_tiny_prints_its_figures():
    proc = _run("-m", "loadtests.bench", "smpp", "--messages", "2000", "--binds", "2", "--window", "20", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for text in ("same-run baseline", "ratio", "messages/s, each receipt acknowledged (target ≥ 20,000)",
                 "SMSC CPU µs per message", "(target ≤ 40)", "submit latency p50 / p99", "load generator CPU µs per message",
                 "peak RSS of the SMSC", "targets:"):
        assert text in out, out
    # correctness, not speed: the carrier recorded every message with one acknowledged receipt
    assert "2,000, 2,000, 2,000, 2,000, 2,000 ✓" in out, out


def test_bench_pipeline_through_smpp_tiny_prints_its_figures():
    """The gateway's task through the smpp plugin to the SMSC, next to sim, at a tiny size: the
    figures print, and the carrier's ground truth has every number delivered once and every
    receipt sent and acknowledged (the bench exits non-zero when the task's end state is wrong)."""
    proc = _run("-m", "loadtests.bench", "pipeline", "--platform", "smpp", "--numbers", "3000", "--batch", "500",
                timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for text in ("same-run baseline", "numbers/s (target ≥ 15,000 and ≥ ⅓ of sim)", "CPU µs per number: gateway / SMSC",
                 "during the send only", "peak RSS of the gateway", "targets:",
                 "sim's runs in order (numbers/s; the baseline is their median)"):
        assert text in out, out
    # the baseline is the median of three sim runs, each listed
    runs = next(line for line in out.splitlines() if "sim's runs in order" in line).split("|")[3]
    assert len(runs.split(", ")) == 3, runs
    assert "ground truth: messages, delivered, receipts sent, acked | 3,000, 3,000, 3,000, 3,000 ✓" in " ".join(out.split()), out


@pytest.mark.parametrize("raw", [False, True], ids=["codec", "raw"])
def test_load_client_on_its_own_against_the_bare_responder(raw):
    bench, _ = _helpers()
    with bench.smpp_bare_server(raw=raw) as bare:
        # --verify decodes each receipt and counts distinct ids; the raw responder's are all alike
        proc = _run("-m", "loadtests.smpp_load", "--port", str(bare.port), "--messages", "1000", "--binds", "2",
                    "--window", "10", "--json", *([] if raw else ["--verify"]), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["complete"] and figures["accepted"] == 1000 and figures["refused"] == {}
    assert figures["receipts"] == 1000 and figures["duplicate_receipts"] == 0


def test_locust_smpp_headless_against_the_carrier(tmp_path):
    """Two users, each its own bind, for 3 s: every accepted message's receipt comes back (exit 0,
    CSV written); an impossible threshold makes the same run exit 1."""
    bench, _ = _helpers()
    with bench.smpp_carrier(str(tmp_path / "carrier.db")) as carrier:
        base = ["-m", "locust", "-f", str(LOADTESTS / "locustfile_smpp.py"), "--headless", "-u", "2", "-r", "2", "-t", "3s",
                "--smpp-host", "127.0.0.1", "--smpp-port", str(carrier.smpp_port), "--system-id", bench.SMPP_ACCOUNT[0],
                "--password", bench.SMPP_ACCOUNT[1], "--smpp-window", "5", "--only-summary"]
        ok = _run(*base, "--min-receipt-share", "1.0", "--csv", str(tmp_path / "run"), timeout=120)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        for name in ("bind_transceiver", "submit_sm", "receipt"):
            assert f"SMPP     {name} " in ok.stdout + ok.stderr
        assert (tmp_path / "run_stats.csv").is_file()
        strict = _run(*base, "--max-p95-ms", "0.001", timeout=120)
        assert strict.returncode == 1, strict.stdout + strict.stderr


def test_locust_smpp_distributed_each_worker_binds(tmp_path):
    """A master and one worker: the worker's users bind their own sessions; the master judges."""
    bench, harness = _helpers()
    port = harness.free_port()
    with bench.smpp_carrier(str(tmp_path / "carrier.db")) as carrier:
        locustfile = str(LOADTESTS / "locustfile_smpp.py")
        master = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", locustfile, "--master", "--expect-workers", "1", "--master-bind-host",
             "127.0.0.1", "--master-bind-port", str(port), "--headless", "-u", "2", "-r", "2", "-t", "3s", "--smpp-port",
             str(carrier.smpp_port), "--system-id", bench.SMPP_ACCOUNT[0], "--password", bench.SMPP_ACCOUNT[1],
             "--only-summary"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port",
             str(port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = master.communicate(timeout=120)
            wout, _ = worker.communicate(timeout=60)
        finally:
            for p in (master, worker):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert master.returncode == 0, out + "\n--- worker ---\n" + wout
        assert "SMPP     submit_sm " in out and "SMPP     receipt " in out, out
        truth = bench.ground_truth_counts(carrier.base, bench.SMPP_ACCOUNT[0], deadline=time.monotonic() + 60)
    assert truth["messages"] > 0 and truth["acked"] == truth["receipts"] == truth["messages"], truth
