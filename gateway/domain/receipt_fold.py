"""The receipt rules (SPEC §4) as plain functions: the deadline, and one receipt folded into one
message's state.

Everything that judges a receipt's time calls ``is_late``: the receipt sink (its fast path for
fresh messages too), the engine's timeout sweep and its next-event computation (through
``late_from`` and ``submitted_before``, which are worked out from ``is_late`` itself), and the
simulator's expected results. To change the timeout rule, change ``receipt_deadline`` (when the
deadline falls) or ``is_late`` (whether a receipt at the deadline itself is in time); every path
follows, as tests/test_receipt_fold.py checks.

No I/O here, and nothing that allocates on the hot path beyond a tuple: ``fold`` runs once per
receipt that is not the usual one (a one-part message delivered in time, which the sink applies
in line after asking ``is_late``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import msgspec

from . import results as R

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# what a fold did, for the task's counters
APPLIED = R.APPLIED  # the masks changed (``Fold.final_at`` set when the number became final)
DUPLICATE = R.DUPLICATE  # nothing new: counted as a duplicate receipt
LATE = R.LATE  # the number failed late before: counted as a late receipt, nothing else
TIMED_OUT = "timed_out"  # the receipt came after the deadline: the number fails then, late


def receipt_deadline(submitted_at: float, timeout: float) -> float:
    """THE deadline: the last instant a receipt of a number submitted at ``submitted_at`` is in
    time; a number that timed out failed at this time."""
    return submitted_at + timeout


def is_late(submitted_at: float, at: float, timeout: float) -> bool:
    """THE timeout rule: a receipt timed ``at`` (or the sweep at service time ``at``) is past the
    deadline of a number submitted at ``submitted_at``."""
    return at > receipt_deadline(submitted_at, timeout)


# The inverses below start from the plain arithmetic and walk to the exact boundary one unit of
# the last place at a time: a rule changed above moves the start with it, and only rounding
# (a few units) is left to walk.
_WALK_LIMIT = 64


def late_from(submitted_at: float, timeout: float) -> float:
    """The first instant at which a number still pending has timed out: the sweep's event time
    (the virtual clock's ``advance`` stops there)."""
    t = receipt_deadline(submitted_at, timeout)
    for _ in range(_WALK_LIMIT):
        if is_late(submitted_at, t, timeout):
            break
        t = math.nextafter(t, math.inf)
    else:
        raise AssertionError("is_late is not a comparison with receipt_deadline")
    while is_late(submitted_at, math.nextafter(t, -math.inf), timeout):
        t = math.nextafter(t, -math.inf)
    return t


def submitted_before(now: float, timeout: float) -> float:
    """The bound for a query: a number submitted at ``s`` has timed out at ``now`` exactly when
    ``s < submitted_before(now, timeout)``. Lets SQL filter with a parameter while the rule stays
    in ``is_late``."""
    c = now - (receipt_deadline(now, timeout) - now)  # the deadline's offset, taken back from now
    for _ in range(_WALK_LIMIT):  # up while numbers submitted at c have timed out
        if not is_late(c, now, timeout):
            break
        c = math.nextafter(c, math.inf)
    else:
        raise AssertionError("is_late is not a comparison with receipt_deadline")
    while True:  # down to the earliest submission that has not
        below = math.nextafter(c, -math.inf)
        if is_late(below, now, timeout):
            return c
        c = below


# How far a ``submitted_at`` read at 15 significant digits (SQLite's JSON rendering of a REAL) may
# be from the exact one, per unit of its magnitude and the timeout's
ROUNDING = 1e-13


def in_time_before(submitted_at: float, timeout: float) -> float:
    """A receipt timed before this is in time even if ``submitted_at`` is off in its 16th
    significant digit: the first instant a number submitted as early as it could have been is
    late (an earlier submission has the earlier deadline). The receipt fold's fast path keeps one
    per submission time (the numbers of a batch share theirs), so a receipt costs a comparison."""
    return late_from(submitted_at - ROUNDING * (2 * abs(submitted_at) + abs(timeout)), timeout)


def clearly_in_time(submitted_at: float, at: float, timeout: float) -> bool:
    """In time even if ``submitted_at`` is off in its 16th significant digit: no exact read needed
    (the same test as ``at < in_time_before(submitted_at, timeout)``, without the walk)."""
    return not is_late(submitted_at - ROUNDING * (2 * abs(submitted_at) + abs(timeout)), at, timeout)


def clearly_late(submitted_at: float, at: float, timeout: float) -> bool:
    """Late even if ``submitted_at`` is off in its 16th significant digit."""
    return is_late(submitted_at + ROUNDING * (2 * abs(submitted_at) + abs(timeout)), at, timeout)


class Fold(NamedTuple):
    """A message's state after one receipt, and what the receipt counts as."""

    did: str  # APPLIED, DUPLICATE, LATE or TIMED_OUT
    result: int
    delivered: int
    failed: int
    late: int
    reasons: str | None  # the JSON list of [code, text(, part)] as stored
    final_at: float | None  # the time the number became final by this receipt; None: it did not


# A ``Fold`` built in C (``Fold(...)`` runs a Python-level ``__new__``: a third of a fold's cost)
_Fold = partial(tuple.__new__, Fold)


def add_reason(reasons: str | None, code: str, text: str, part: int | None = None) -> str:
    """Reasons are kept per receipt, with the part a receipt names (a failed four-part message may
    show four reasons, and the console says which part each came from)."""
    kept = _decode(reasons) if reasons else []
    kept.append([code, text] if part is None else [code, text, part])
    return _encode(kept).decode()


def fold(submitted_at: float, parts: int, result: int, delivered: int, failed: int, late: int,
         reasons: str | None, status: str, part: int | None, code: str | None, text: str | None, at: float,
         timeout: float) -> Fold:
    """One receipt (``status`` "delivered" or "failed", for ``part`` or the whole message when
    None, timed ``at``) folded into a message's state. ``submitted_at`` must be exact when ``at``
    is near the deadline (see ``clearly_in_time``).

    A pending number whose receipt is late fails at its deadline with RECEIPT_TIMEOUT and is
    marked late; a number that failed late only counts later receipts as late; otherwise the
    part masks decide (``results.apply_part``), a failure keeps its reason, and the number
    becomes final when ``results.result_of`` says so."""
    if result == R.PENDING and is_late(submitted_at, at, timeout):
        return _Fold((TIMED_OUT, R.FAILED, delivered, failed, 1,
                      add_reason(reasons, R.RECEIPT_TIMEOUT, R.RECEIPT_TIMEOUT_TEXT),
                      receipt_deadline(submitted_at, timeout)))
    if late:
        return _Fold((LATE, result, delivered, failed, late, reasons, None))
    new_delivered, new_failed, what = R.apply_part(parts, delivered, failed, part, status == "delivered")
    if what == R.DUPLICATE:
        return _Fold((DUPLICATE, result, delivered, failed, late, reasons, None))
    if status == "failed":
        reasons = add_reason(reasons, code or "UNKNOWN", text or "", part)
    final_at = None
    if result == R.PENDING:
        after = R.result_of(parts, new_delivered, new_failed)
        if after != R.PENDING:
            result, final_at = after, at
    return _Fold((APPLIED, result, new_delivered, new_failed, late, reasons, final_at))


def timed_out_state(reasons: str | None = None) -> tuple[int, int, str]:
    """The state the sweep gives a number still pending past its deadline: result, late, reasons."""
    return R.FAILED, 1, add_reason(reasons, R.RECEIPT_TIMEOUT, R.RECEIPT_TIMEOUT_TEXT)
