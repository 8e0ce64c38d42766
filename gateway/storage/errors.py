"""What a store reports when an operation cannot be done, in the service's words.

The services catch these, not ``sqlite3.IntegrityError`` or ``asyncpg.UniqueViolationError``: a
backend translates its own driver's errors at its edge, so the rules above it read the same
whichever database holds the rows.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class NameTaken(StoreError):
    """A unique name (an audience's, a token's) is already used in that workspace; nothing was stored."""

    def __init__(self, name: str):
        super().__init__(f"the name {name!r} is already taken")
        self.name = name


class StorageUnavailable(StoreError):
    """The database refused a write for a reason of its own (a full disk, an I/O error)."""


class StaleBatch(StoreError):
    """A dispatch batch was not recorded because the task's cursor is already past it: another
    gateway instance took the task's dispatch over (the lease of this one ran out) and recorded
    the same numbers. Nothing was written; the dispatcher that got this must stop sending the
    task, or its numbers would be counted twice."""

    def __init__(self, task_id: int, cursor: int):
        super().__init__(f"task {task_id}: the batch up to audience position {cursor} was recorded by another instance")
        self.task_id = task_id
        self.cursor = cursor
