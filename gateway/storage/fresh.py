"""Messages the dispatcher just recorded and no receipt has touched since: the receipt fold
finds them here instead of reading them back from the database.

The cache belongs to the one writer path for message results (``gateway.pipeline.results.
MessageResults``), which hands it to the message store's operations: the store fills it after a
record commits and takes from it or clears it inside the transactions that change message rows.
No SQL here.

On a fast carrier a number's receipt arrives within a second of its acknowledgement, and the
receipt sink's SELECT of the messages it names cost about 1 µs per receipt on the writer's
thread (docs/benchmarks.md, round 5). The dispatcher knows every column of a row it has just
inserted: its id (the ids of one INSERT follow each other, checked against the table's largest
id before and after), task, parts and submission time; everything else is at its default.

Why this cannot go stale: it is only used while the writer runs no other transaction. Entries
are added on the writer's thread right after the record's COMMIT (``Database.write(on_commit=
...)``), before the next transaction can change them; a receipt flush takes (removes) the
entries of the messages it changes, inside its transaction; anything else that changes message
rows clears them inside its own transaction (the receipt-timeout sweep and the retention purge:
both go through ``MessageResults``, which passes this cache to the store), or is never added (a
record that applied receipts which overtook it). A flush that rolls back has only removed entries, so those messages are read from SQLite again. An
entry missing is never wrong, only slower: the table is bounded (``limit``) and drops its
oldest entries first, so a profile whose receipts come late simply takes the SELECT.
"""

from __future__ import annotations

from itertools import islice, repeat


class FreshMessages:
    """Per platform: platform id → (message id, task id, submitted_at, parts).

    The receipt fold takes a row by popping it from ``rows[platform]`` (``sqlite/receipts._take_fresh``):
    a row taken is forgotten, because the sink is about to change that message."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self.rows: dict[str, dict[str, tuple[int, int, float, int]]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.rows.values()))

    def add(self, platform: str, platform_ids: list[str], first_id: int, task_id: int, submitted_at: float,
            parts: int) -> None:
        """``platform_ids[i]`` was just committed as message ``first_id + i``, pending, untouched."""
        rows = self.rows.setdefault(platform, {})
        rows.update(zip(platform_ids, zip(range(first_id, first_id + len(platform_ids)), repeat(task_id),
                                          repeat(submitted_at), repeat(parts))))
        if len(rows) > self.limit:  # oldest first; down to three quarters, so this runs seldom
            for pid in list(islice(rows, len(rows) - self.limit * 3 // 4)):
                del rows[pid]

    def clear(self) -> None:
        """Message rows changed outside the receipt sink: read them from SQLite again."""
        self.rows.clear()
