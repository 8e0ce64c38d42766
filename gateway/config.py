"""Service settings. Each has a command-line option and an SMSLAB_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .domain.optout import DEFAULT_KEYWORDS, parse_keywords
from .gc_tuning import DEFAULT_GEN0


@dataclass
class Config:
    db_path: str = "smslab.db"
    host: str = "127.0.0.1"
    port: int = 8080
    clock: str = "wall"  # wall | virtual
    clock_start: float | None = None  # virtual clock: start instant (epoch seconds), default now
    clock_rate: float = 0.0  # virtual clock: multiple of real time it flows at between advances
    default_region: str = "CN"  # region for numbers written without a country code
    receipt_timeout: float = 72 * 3600.0
    retention: float = 168 * 3600.0
    dispatch_batch: int = 1000
    submit_give_up_seconds: float = 600.0  # service time a platform may stay unreachable before a task fails
    receipt_flush_max: int = 4000  # group commit cap; smaller than a few requests' worth, so HTTP and SQLite overlap
    receipt_flush_interval: float = 0.002
    tick_interval: float = 0.05
    # several instances on one PostgreSQL database: a dead leader's work is taken over within
    # this many seconds (gateway.pipeline.leadership)
    lease_seconds: float = 10.0
    # the URL the other instances reach this one at (they forward to the leader what only it
    # serves); default http://{host}:{port}, with 127.0.0.1 for a wildcard host
    advertise_url: str | None = None
    gc_gen0: int = DEFAULT_GEN0  # `smslab serve` (and `smslab carrier`, by the same variable): collections of CPython's youngest generation every N allocations (0: Python's default, 700)
    max_json_body: int = 16 * 1024 * 1024
    max_csv_body: int = 256 * 1024 * 1024
    profile: str | None = None  # simulated carrier: a TOML/JSON file or a preset name
    default_platform: str = "sim"
    # replies (mobile-originated messages) that put their sender on the workspace's opt-out list
    # (gateway.domain.optout); empty: no reply opts out
    opt_out_keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    extras: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        cfg = cls()
        env = os.environ
        mapping = {
            "SMSLAB_DB": ("db_path", str),
            "SMSLAB_DEFAULT_REGION": ("default_region", str),
            "SMSLAB_RECEIPT_TIMEOUT_HOURS": ("receipt_timeout", lambda v: float(v) * 3600),
            "SMSLAB_RETENTION_HOURS": ("retention", lambda v: float(v) * 3600),
            "SMSLAB_DISPATCH_BATCH": ("dispatch_batch", int),
            "SMSLAB_SUBMIT_GIVE_UP_SECONDS": ("submit_give_up_seconds", float),
            "SMSLAB_CLOCK": ("clock", str),
            "SMSLAB_LEASE_SECONDS": ("lease_seconds", float),
            "SMSLAB_ADVERTISE_URL": ("advertise_url", str),
            "SMSLAB_CLOCK_RATE": ("clock_rate", float),
            "SMSLAB_PROFILE": ("profile", str),
            "SMSLAB_GC_GEN0": ("gc_gen0", int),
            "SMSLAB_RECEIPT_FLUSH_MAX": ("receipt_flush_max", int),
            "SMSLAB_RECEIPT_FLUSH_MS": ("receipt_flush_interval", lambda v: float(v) / 1000),
            "SMSLAB_OPT_OUT_KEYWORDS": ("opt_out_keywords", parse_keywords),
        }
        for var, (attr, conv) in mapping.items():
            if var in env:
                setattr(cfg, attr, conv(env[var]))
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg
