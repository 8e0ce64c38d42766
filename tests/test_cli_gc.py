"""`smslab serve` tunes CPython's garbage collector (see gateway.cli._tune_gc for why)."""

from __future__ import annotations

import gc

from gateway import cli
from gateway.config import Config


def test_serve_collects_less_often_and_freezes_what_exists_at_start(monkeypatch):
    before = gc.get_threshold()
    try:
        cli._tune_gc(0)  # 0: Python's own settings
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        cli._tune_gc(12_345)
        assert gc.get_threshold() == (12_345, 20, 20) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    monkeypatch.setenv("SMSLAB_GC_GEN0", "0")
    assert Config.from_env().gc_gen0 == 0
    monkeypatch.delenv("SMSLAB_GC_GEN0")
    assert Config.from_env().gc_gen0 == 10_000
