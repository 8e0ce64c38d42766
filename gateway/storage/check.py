"""The check area: a task's stored counters against its message rows (``smslab check``).

Why: the API derives ``pending`` as ``sent - succeeded - failed``, so the counts it shows always
add up, whatever went wrong. The only independent witness is the message rows themselves: one
row per number sent, each holding its own result. The check counts them again with a GROUP BY
and compares every counter a task stores that rows can tell:

- ``sent``: rows of the task;
- ``succeeded`` / ``failed``: rows whose result is succeeded / failed;
- ``segments``: the parts of all its rows.

``late_receipts`` and ``duplicate_receipts`` count receipts, not numbers (a number may have
several), and ``accepted``/``skipped`` count numbers that got no row: no row can witness those.

Tasks whose details are purged keep only their counters: nothing to compare, they are skipped
and counted as such. So are tasks whose details have expired (the purge deletes rows in chunks
before it marks the task purged: a check running meanwhile would see rows missing).

Backends give the raw numbers, read in one snapshot; ``compare`` is the rule, shared by them.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Protocol

from ..domain import results as R

COUNTERS = ("sent", "succeeded", "failed", "segments")
NO_TASK = "task"  # the counter named by rows whose task does not exist


class TaskCounters(NamedTuple):
    """What a task stores (``state`` is ``checked``, ``purged`` or ``expired``)."""

    task_id: int
    sent: int
    succeeded: int
    failed: int
    segments: int
    state: str


class ResultRows(NamedTuple):
    """``GROUP BY task_id, result`` over the message rows: how many, and their parts."""

    task_id: int
    result: int
    rows: int
    parts: int


class CounterMismatch(NamedTuple):
    task_id: int
    counter: str  # one of COUNTERS, or NO_TASK (stored 0: rows of a task that does not exist)
    stored: int
    from_rows: int


class CountCheck(NamedTuple):
    checked: int  # tasks whose counters were compared
    purged: int  # skipped: details purged, only counters left
    expired: int  # skipped: details expired, their purge may be under way
    mismatches: list[CounterMismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def compare(tasks: Iterable[TaskCounters], groups: Iterable[ResultRows]) -> CountCheck:
    """The counters of each task against what its rows add up to. Both inputs must come from
    one snapshot of the database."""
    from_rows: dict[int, dict[str, int]] = {}
    for g in groups:
        counts = from_rows.setdefault(g.task_id, dict.fromkeys(COUNTERS, 0))
        counts["sent"] += g.rows
        counts["segments"] += g.parts
        if g.result == R.SUCCEEDED:
            counts["succeeded"] += g.rows
        elif g.result == R.FAILED:
            counts["failed"] += g.rows
    checked = purged = expired = 0
    mismatches: list[CounterMismatch] = []
    known: set[int] = set()
    for task in tasks:
        known.add(task.task_id)
        if task.state == "purged":
            purged += 1
            continue
        if task.state == "expired":
            expired += 1
            continue
        checked += 1
        counts = from_rows.get(task.task_id) or dict.fromkeys(COUNTERS, 0)
        for counter in COUNTERS:
            stored = getattr(task, counter)
            if stored != counts[counter]:
                mismatches.append(CounterMismatch(task.task_id, counter, stored, counts[counter]))
    for task_id in sorted(set(from_rows) - known):
        mismatches.append(CounterMismatch(task_id, NO_TASK, 0, from_rows[task_id]["sent"]))
    mismatches.sort(key=lambda m: (m.task_id, COUNTERS.index(m.counter) if m.counter in COUNTERS else -1))
    return CountCheck(checked, purged, expired, mismatches)


class CheckStore(Protocol):
    async def count_mismatches(self, now: float | None = None) -> CountCheck:
        """Every task's counters against its message rows, read in one snapshot (consistent
        while the service keeps writing; nothing is written). A task counts as expired when its
        details expire at or before ``now``; None: the service's clock as the database last
        saw it (the virtual instant a virtual clock saved, else the wall clock), since a
        separate process cannot ask the service."""
        ...
