"""Per-number results from per-part receipts (SPEC §4) and the receipt timeout.

A message of N parts is tracked as two bit masks (parts delivered, parts failed). It is
``succeeded`` when every part is delivered, ``failed`` as soon as any part fails, and ``pending``
until then. Every failure reason is kept, because a number can fail for several reasons.
Once final, a result never changes: later receipts are duplicates or late, and are only counted.
"""

from __future__ import annotations

PENDING = 0
SUCCEEDED = 1
FAILED = 2

RESULT_NAMES = {PENDING: "pending", SUCCEEDED: "succeeded", FAILED: "failed"}
RESULT_CODES = {v: k for k, v in RESULT_NAMES.items()}

RECEIPT_TIMEOUT = "RECEIPT_TIMEOUT"
RECEIPT_TIMEOUT_TEXT = "no delivery receipt within the receipt timeout"

# what one receipt did to its message
APPLIED = "applied"
DUPLICATE = "duplicate"
LATE = "late"


def full_mask(parts: int) -> int:
    return (1 << parts) - 1


def apply_part(parts: int, delivered: int, failed: int, part: int | None, ok: bool) -> tuple[int, int, str]:
    """Fold one receipt into the masks. ``part=None`` is a receipt for the whole message.

    Returns the new masks and what the receipt did (``applied`` or ``duplicate``)."""
    bits = full_mask(parts) if part is None else (1 << part if 0 <= part < parts else 0)
    if bits == 0:
        return delivered, failed, DUPLICATE
    seen = delivered | failed
    if bits & ~seen == 0:
        return delivered, failed, DUPLICATE
    new_bits = bits & ~seen
    if ok:
        return delivered | new_bits, failed, APPLIED
    return delivered, failed | new_bits, APPLIED


def result_of(parts: int, delivered: int, failed: int) -> int:
    if failed:
        return FAILED
    if delivered == full_mask(parts):
        return SUCCEEDED
    return PENDING
