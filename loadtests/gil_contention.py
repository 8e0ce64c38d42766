"""Why the hot path writes rows through ``json_each`` instead of ``executemany``.

Python's sqlite3 releases the GIL around each ``sqlite3_step``; ``executemany`` steps once per
row. Next to a thread that runs Python, every row then waits to get the GIL back. This measures
200,000 inserts in batches of 1,000, both ways, alone, next to a thread running Python, and two
writers on two database files at once against one after the other:

    python -m loadtests.gil_contention [--rows 200000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time
from pathlib import Path

import msgspec

encode = msgspec.json.encode


def _connect(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE m(id INTEGER PRIMARY KEY, a TEXT, b TEXT, c REAL)")
    conn.execute("CREATE INDEX mb ON m(b)")
    return conn


def _rows(lo: int, hi: int, tag: int) -> list[tuple]:
    return [(f"x{i}", f"sim-{tag}-{i:010d}", 1.5) for i in range(lo, hi)]


def executemany(conn: sqlite3.Connection, n: int, tag: int) -> None:
    for lo in range(0, n, 1000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO m(a, b, c) VALUES (?,?,?)", _rows(lo, lo + 1000, tag))
        conn.execute("COMMIT")


def json_each(conn: sqlite3.Connection, n: int, tag: int) -> None:
    for lo in range(0, n, 1000):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO m(a, b, c) SELECT value->>0, value->>1, value->>2 FROM json_each(?)",
                     (encode(_rows(lo, lo + 1000, tag)),))
        conn.execute("COMMIT")


def _python_load(stop: list[bool]) -> None:
    x = 0
    while not stop[0]:
        for i in range(1000):
            x += i


def measure(write, folder: Path, n: int) -> dict[str, float]:
    a, b = folder / "gil-a.db", folder / "gil-b.db"
    out = {}
    conn = _connect(a)
    t = time.perf_counter()
    write(conn, n, 1)
    out["alone"] = time.perf_counter() - t
    conn.close()

    conn = _connect(a)
    stop = [False]
    load = threading.Thread(target=_python_load, args=(stop,))
    load.start()
    t = time.perf_counter()
    write(conn, n, 1)
    out["next to Python"] = time.perf_counter() - t
    stop[0] = True
    load.join()
    conn.close()

    c1, c2 = _connect(a), _connect(b)
    t = time.perf_counter()
    write(c1, n, 1)
    write(c2, n, 2)
    out["two, one after the other"] = time.perf_counter() - t
    c1.close(), c2.close()

    c1, c2 = _connect(a), _connect(b)
    threads = [threading.Thread(target=write, args=(c, n, k)) for k, c in ((1, c1), (2, c2))]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out["two at once"] = time.perf_counter() - t
    c1.close(), c2.close()
    for p in (a, b):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--dir", default=os.environ.get("TMPDIR", "/tmp"))
    args = p.parse_args()
    folder = Path(args.dir)
    print(f"{args.rows:,} rows in batches of 1,000, seconds (sqlite {sqlite3.sqlite_version})")
    print(f"| {'case':<26} | executemany | json_each |")
    print(f"|{'-' * 28}|-------------|-----------|")
    many, each = measure(executemany, folder, args.rows), measure(json_each, folder, args.rows)
    for case in many:
        print(f"| {case:<26} | {many[case]:>11.2f} | {each[case]:>9.2f} |")


if __name__ == "__main__":
    main()
