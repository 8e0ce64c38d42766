"""`smslab serve` and `smslab carrier` tune CPython's garbage collector (gateway/gc_tuning.py says why)."""

from __future__ import annotations

import gc

import pytest

from gateway.config import Config
from gateway.gc_tuning import gen0_from_env, tune_gc


def test_the_services_collect_less_often_and_freeze_what_exists_at_start(monkeypatch):
    before = gc.get_threshold()
    try:
        tune_gc(0)  # 0: Python's own settings
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        tune_gc(12_345)
        assert gc.get_threshold() == (12_345, 20, 20) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    monkeypatch.setenv("SMSLAB_GC_GEN0", "0")
    assert Config.from_env().gc_gen0 == 0 and gen0_from_env() == 0
    monkeypatch.delenv("SMSLAB_GC_GEN0")
    assert Config.from_env().gc_gen0 == 10_000 and gen0_from_env() == 10_000


def test_the_carrier_names_a_bad_setting_instead_of_a_traceback(monkeypatch):
    monkeypatch.setenv("SMSLAB_GC_GEN0", "lots")
    with pytest.raises(SystemExit, match="SMSLAB_GC_GEN0"):
        gen0_from_env()
