"""Compare a task's per-number results with what the simulated carrier decided (its ground truth).

The semantics are those of docs/simulator.md "Ground truth" (and of the service's own tests,
``tests/test_simulator_service.py``): for every task

- ``sent`` = the number of ground-truth items that are not ``refused``, and ``skipped.refused``
  the number that are; ``segments`` = the sum of ``parts`` over the items not refused;
- per number, the gateway's result = ``expected_result`` (``receipt_timeout`` shown as ``failed``
  with the reason ``RECEIPT_TIMEOUT``; a ``failed`` number's reasons are codes of failed receipts
  the carrier emitted); a refused number has no row;
- the task's ``succeeded``/``failed``/``pending`` equal the rows counted.

The evidence is independent: the gateway's rows (``GET /api/v1/tasks/{id}/messages``, every page)
against the carrier's items, row by row; no counter is compared with a count derived from itself.
Rows show numbers masked to their last four digits, so rows are matched to numbers by the mask,
and a mask shared by several numbers of the task is resolved by searching the task's rows for
each such number (``?q=`` digits).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

SHOWN = {"succeeded": "succeeded", "failed": "failed", "receipt_timeout": "failed", "refused": "(no row)"}


def mask(number: str) -> str:
    """The gateway's mask (gateway.domain.numbers.mask): only the last four digits shown."""
    return "*" * len(number) if len(number) <= 4 else "*" * (len(number) - 4) + number[-4:]


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def ambiguous(rows: list[dict], truth: list[dict]) -> list[str]:
    """The numbers whose mask is not unique among the task's numbers and rows: they need a
    search to find their row."""
    count: dict[str, int] = defaultdict(int)
    for item in truth:
        count[mask(item["number"])] += 1
    rows_by_mask: dict[str, int] = defaultdict(int)
    for row in rows:
        rows_by_mask[row["number_masked"]] += 1
    return [item["number"] for item in truth
            if count[mask(item["number"])] > 1 or rows_by_mask[mask(item["number"])] > 1]


def pair(rows: list[dict], truth: list[dict], lookup: Callable[[str], list[dict]]) -> tuple[dict[str, dict | None], list[dict]]:
    """Per ground-truth number its gateway row (None: no row), and the rows no number claims."""
    need_search = set(ambiguous(rows, truth))
    by_mask: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_mask[row["number_masked"]].append(row)
    found: dict[str, dict | None] = {}
    claimed: dict[str, int] = defaultdict(int)
    for item in truth:
        number = item["number"]
        m = mask(number)
        if number in need_search:
            hits = [r for r in lookup(number) if r["number_masked"] == m]
            found[number] = hits[0] if len(hits) == 1 else None
            if len(hits) > 1:  # the gateway has two rows for one number
                found[number] = {**hits[0], "_rows": len(hits)}
        else:
            found[number] = by_mask[m][0] if by_mask.get(m) else None
        if found[number] is not None:
            claimed[m] += 1
    stray = []
    for m, group in by_mask.items():
        stray += group[claimed.get(m, 0):]
    return found, stray


def differences(task: dict, rows: list[dict], truth: list[dict], found: dict[str, dict | None], stray: list[dict],
                final: bool = True) -> list[str]:
    """Readable lines, one per disagreement; empty when the gateway matches the carrier."""
    out: list[str] = []
    sent = [m for m in truth if m["outcome"] != "refused"]
    refused = len(truth) - len(sent)
    if task.get("sent") != len(sent):
        out.append(f"task sent={task.get('sent')} but the carrier accepted {len(sent)} numbers")
    if len(rows) != len(sent):
        out.append(f"the gateway lists {len(rows)} message rows but the carrier accepted {len(sent)} numbers")
    skipped = (task.get("skipped") or {}).get("refused", 0)
    if skipped != refused:
        out.append(f"task skipped.refused={skipped} but the carrier refused {refused} numbers")
    parts = sum(m["parts"] for m in sent)
    if "segments" in task and task["segments"] != parts:
        out.append(f"task segments={task['segments']} but the carrier's parts add up to {parts}")
    for m in truth:
        number, expected = m["number"], m["expected_result"]
        row = found.get(number)
        if m["outcome"] == "refused":
            if row is not None:
                out.append(f"{number}: gateway {row['result']} but the carrier refused it (expected no row)")
            continue
        if row is None:
            out.append(f"{number}: no gateway row; carrier expected {SHOWN.get(expected, expected)}"
                       f" (outcome {m['outcome']}, code {m.get('code')})")
            continue
        if row.get("_rows"):
            out.append(f"{number}: the gateway has {row['_rows']} rows for it")
        codes = [r["code"] for r in row.get("failure_reasons") or []]
        got = f"{row['result']}" + (f" {','.join(codes)}" if codes else "")
        want_text = f"{SHOWN.get(expected, expected)}" + (" RECEIPT_TIMEOUT" if expected == "receipt_timeout" else
                                                          f" {m.get('code')}" if expected == "failed" else "")
        emitted = [r for r in m.get("receipts", []) if r.get("emitted_at") is not None]
        if row.get("segments") is not None and row["segments"] != m["parts"]:
            out.append(f"{number}: gateway segments {row['segments']} vs carrier parts {m['parts']}")
        if final:
            unsent = [r for r in m.get("receipts", []) if r.get("emitted_at") is None and not r.get("swallowed")]
            if unsent:
                out.append(f"{number}: the carrier has not emitted {len(unsent)} receipt(s) yet (advance the clock"
                           " past every receipt, or pass final=False)")
            want = SHOWN.get(expected, expected)
            if row["result"] != want:
                out.append(f"{number}: gateway {got} vs carrier expected {want_text}")
            elif expected == "receipt_timeout" and "RECEIPT_TIMEOUT" not in codes:
                out.append(f"{number}: gateway {got} vs carrier expected {want_text}")
            elif expected == "failed":
                failed_codes = {r["code"] for r in emitted if r["status"] == "failed"}
                if not codes or not set(codes) <= failed_codes:
                    out.append(f"{number}: gateway {got} vs carrier expected failed with one of"
                               f" {sorted(failed_codes) or '(no failed receipt emitted)'}")
        elif row["result"] != "pending" and row["result"] != SHOWN.get(expected, expected):
            out.append(f"{number}: gateway {got} vs carrier expected {want_text}")
    for row in stray:
        out.append(f"{row['number_masked']}: a gateway row ({row['result']}) for a number the carrier never saw")
    counts = {"succeeded": 0, "failed": 0, "pending": 0}
    for row in rows:
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    for key in ("succeeded", "failed", "pending"):
        if key in task and task[key] != counts[key]:
            out.append(f"task {key}={task[key]} but {counts[key]} rows are {key}")
    return out


def report(task_id: Any, lines: Iterable[str], limit: int = 50) -> str:
    lines = list(lines)
    shown = lines[:limit]
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return (f"task {task_id} does not match the carrier's ground truth ({len(lines)} difference(s)):\n  "
            + "\n  ".join(shown) + more)
