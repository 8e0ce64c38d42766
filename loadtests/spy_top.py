"""Summarise a py-spy ``--format raw`` recording (collapsed stacks): the functions with the most
samples, inclusive and self, per thread kind.

    python -m loadtests.spy_top out.raw [--top 25] [--filter gateway]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_LOC = re.compile(r" \((?P<file>[^)]*)\)$")


def _short(frame: str) -> str:
    m = _LOC.search(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return frame[: m.start()] + f" ({file})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--filter", default=None, help="only count frames whose text contains this")
    args = p.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in open(args.file):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0].split(" ")[0] if frames else "?"] += count
        # the thread kind: the event loop (asyncio) or aiosqlite's worker thread
        kind = "sqlite-thread" if any("aiosqlite/core.py" in f and "run" in f for f in frames[:4]) else "loop/main"
        threads[kind] += 0
        seen = set()
        for f in frames[1:]:
            s = _short(f.split(":")[0] if f.count(":") > 1 else f)
            if args.filter and args.filter not in s:
                continue
            if s not in seen:
                inclusive[s] += count
                seen.add(s)
        if frames:
            own[_short(frames[-1])] += count
    print(f"{total} samples")
    print("\n== inclusive (share of all samples)")
    for f, c in inclusive.most_common(args.top):
        print(f"{100 * c / total:5.1f}%  {f}")
    print("\n== self")
    for f, c in own.most_common(args.top):
        print(f"{100 * c / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
