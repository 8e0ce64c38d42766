"""Counters checked against rows: the check that ``smslab check`` runs, as test assertions.

``sent == succeeded + failed + pending`` in an API answer cannot fail (``pending`` is derived
from the others); these compare each task's stored counters with its message rows instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gateway.storage.check import CountCheck


def run_check(db_path, *extra: str) -> subprocess.CompletedProcess:
    """``smslab check --db db_path`` as a process of its own, whatever its exit status."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", "check", "--db", str(db_path), *extra],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=120)


def assert_counters_match_rows(db_path, min_checked: int = 1) -> dict:
    """Run ``smslab check --json`` on the SQLite file (a running service may be using it) and
    assert that every counter matches; returns the report."""
    proc = run_check(db_path, "--json")
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"] and not report["mismatches"], report
    assert report["checked"] >= min_checked, report
    return report


async def assert_counters_match_rows_of(storage, now: float, min_checked: int = 1) -> CountCheck:
    """The same check in-process, on a test service's open storage (``app[storage_key]``, either
    backend) or a bare SQLite ``Database``; ``now``: the service's clock (which tasks' details
    have expired)."""
    if hasattr(storage, "check"):
        store = storage.check
    else:
        from gateway.storage.sqlite.check import SqliteCheckStore

        store = SqliteCheckStore(storage)
    result = await store.count_mismatches(now)
    assert result.ok, result.mismatches
    assert result.checked >= min_checked, result
    return result
