"""Batch statements that SQLite runs in a single step: rows go in as one JSON parameter
(``json_each``) and come out as one JSON value (``json_group_array``).

Why not ``executemany`` and ``fetchall``: Python's sqlite3 releases the GIL around every
``sqlite3_step``, and those step once per row. In a busy process each release lets another
thread take the GIL, and taking it back waits until that thread lets go, up to the switch
interval (5 ms). Measured on the 2-core benchmark machine (``python -m loadtests.gil_contention``,
round 3 of docs/benchmarks.md): 200,000 ``executemany`` inserts in batches of 1,000 take 0.35 s
alone and 53 s next to a thread running Python; the same rows through ``json_each`` take 0.35 s
alone and 2.5 s in that contest, and two such writers on two database files run in parallel
(0.50 s for both, against 0.71 s one after the other). The service has exactly that
shape: the event loop, the gateway's writer and the carrier's writer all want the GIL.

One caveat: SQLite 3.40 renders a REAL inside JSON with 15 significant digits, which would
round timestamps. ``exact`` renders one with 17 (``printf('%!.17g')``), which reads back as the
same double.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Sequence

import msgspec

encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode


def exact(column: str, nullable: bool = False) -> str:
    """A REAL column as a JSON number that round-trips to the same double (for every magnitude a
    time or a delay can have; SQLite's printf is one unit off at the very top of the double range,
    around 1.8e308)."""
    rendered = f"json(printf('%!.17g', {column}))"
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE {rendered} END" if nullable else rendered


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = (), decoder: Callable[[Any], list] = decode) -> list:
    """Run a query whose single value is a ``json_group_array`` and return its rows (as lists,
    or as whatever ``decoder``, e.g. a ``msgspec.json.Decoder(list[SomeStruct]).decode``, makes)."""
    cursor = conn.execute(sql, params)
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()  # an open statement would keep this connection's read snapshot
    return decoder(row[0]) if row and row[0] else []
