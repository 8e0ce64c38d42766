"""How often CPython's cyclic garbage collector runs, for the two long-running processes
(``smslab serve`` and ``smslab carrier``).

Both allocate short-lived tuples, lists and objects by the thousand per batch, almost all freed
by reference counting. CPython's default starts a collection of the youngest generation every 700
new container objects, i.e. every few hundred messages, and a collection of the older ones every
few of those, each walking objects that are still alive (the carrier keeps a journal of 100,000
PDUs, its open receipts and the data of recent messages) for nothing.
"""

from __future__ import annotations

import gc
import os

DEFAULT_GEN0 = 10_000


def gen0_from_env(default: int = DEFAULT_GEN0) -> int:
    """``SMSLAB_GC_GEN0`` (0: Python's default), for a command that has no Config of its own."""
    value = os.environ.get("SMSLAB_GC_GEN0", "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"SMSLAB_GC_GEN0 must be a whole number, not {value!r}") from None


def tune_gc(gen0: int) -> None:
    """Collect every ``gen0`` allocations instead, with what exists at start frozen out of the
    collector's way. Measured: the gateway's pipeline 60–65 k → 72–78 k numbers/s and ingest
    119 k → 130 k receipts/s, peak RSS unchanged (docs/benchmarks.md, round 3); the carrier's
    SMSC spent about 1 s of 9 in 2,000 collections during a 200,000-number SMPP task without it."""
    if gen0 <= 0:
        return
    gc.freeze()
    gc.set_threshold(gen0, 20, 20)
