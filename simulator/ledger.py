"""The carrier's books in memory: which keys each submission batch holds (for idempotent
resubmission) and the receipts still to emit, in due order.

On disk the carrier keeps one row per submission batch (``sim_batches``: its messages as one JSON
value), not a row per message and per receipt: writing a batch of 1,000 costs one row. What
the rows cannot answer cheaply, these answer from memory:

- ``KeyRanges``: per task, the smallest and largest platform id of every batch, so a
  submission can tell at once that none of its keys was seen before (the usual case: keys grow)
  and read back only the batches whose range overlaps when one may have been.
- ``DueQueue``: the receipts not emitted yet, as a heap ordered by (due time, receipt id). It is
  rebuilt at start from the batches holding receipts after the emission watermark, so a restart
  loses nothing; it holds only what is still to come, so its size is the backlog of receipts.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right


class KeyRanges:
    """Batches of one task by key range: ``first`` sorted, ``reach[i]`` = max ``last`` of 0..i."""

    __slots__ = ("first", "last", "ids", "reach")

    def __init__(self) -> None:
        self.first: list[str] = []
        self.last: list[str] = []
        self.ids: list[int] = []
        self.reach: list[str] = []

    def add(self, first: str, last: str, batch_id: int) -> None:
        i = bisect_right(self.first, first)
        self.first.insert(i, first)
        self.last.insert(i, last)
        self.ids.insert(i, batch_id)
        self.reach.insert(i, last)
        for j in range(i, len(self.reach)):  # only to the end: appends (growing keys) cost O(1)
            prev = self.reach[j - 1] if j else ""
            self.reach[j] = max(prev, self.last[j])

    def overlapping(self, low: str, high: str) -> list[int]:
        """Ids of the batches whose range meets [low, high]."""
        end = bisect_right(self.first, high)
        if end == 0 or self.reach[end - 1] < low:
            return []  # every batch starting at or before `high` ends before `low`
        return [self.ids[j] for j in range(end) if self.last[j] >= low]


class DueQueue:
    """Receipts to emit as ``(due_at, receipt id, platform id, part, status, code)``."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple] = []

    def __len__(self) -> int:
        return len(self._heap)

    def clear(self) -> None:
        self._heap.clear()

    def remove(self, dropped) -> None:
        """Forget the receipts for which ``dropped(row)`` is true (a workspace's carrier reset)."""
        self._heap = [row for row in self._heap if not dropped(row)]
        heapq.heapify(self._heap)

    def push(self, rows: list[tuple]) -> None:
        heap = self._heap
        if len(rows) > len(heap):
            heap.extend(rows)
            heapq.heapify(heap)
        else:
            for row in rows:
                heapq.heappush(heap, row)

    def pop_due(self, now: float, limit: int) -> list[tuple]:
        """The receipts due by ``now``, oldest first, at most ``limit``."""
        heap = self._heap
        if heap and max(heap)[0] <= now:  # all of it is due: one sort, in C
            out = sorted(heap)
            if len(out) <= limit:
                heap.clear()
                return out
            heap[:] = out[limit:]  # a sorted list is a heap
            del out[limit:]
            return out
        out = []
        while heap and heap[0][0] <= now and len(out) < limit:
            out.append(heapq.heappop(heap))
        return out

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

