"""Bulk statements: rows in through json_each and out through json_group_array, exactly."""

from __future__ import annotations

import random
import sqlite3

from gateway.storage.sqlite import bulk


def test_exact_reals_survive_the_json_round_trip():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, at REAL, maybe REAL)")
    rnd = random.Random(11)
    values = [1.7e9 + rnd.random() * 1e8 for _ in range(3000)] + [rnd.random() * 10 ** rnd.randint(-9, 12) for _ in range(3000)]
    values += [0.0, 1e-300, 5e-324, 0.1 + 0.2, -3.5, 1e200]  # (at the very top of the double range, 1.8e308, it is off by one unit)
    rows = [(i, v, None if i % 3 == 0 else v) for i, v in enumerate(values)]
    conn.execute("INSERT INTO t SELECT value->>0, value->>1, value->>2 FROM json_each(?)", (bulk.encode(rows),))
    back = bulk.fetch(conn, f"SELECT json_group_array(json_array(id, {bulk.exact('at')}, {bulk.exact('maybe', nullable=True)}))"
                            " FROM (SELECT * FROM t ORDER BY id)")
    assert [tuple(r) for r in back] == rows
    # what exact() guards against: SQLite's own JSON rendering of a REAL rounds to 15 digits
    (plain,) = conn.execute("SELECT json_array(at) FROM t WHERE id=0").fetchone()
    assert bulk.decode(plain)[0] != values[0]


def test_fetch_of_no_rows_is_an_empty_list():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t(x)")
    assert bulk.fetch(conn, "SELECT json_group_array(x) FROM t") == []
