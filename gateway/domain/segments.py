"""How many billed parts a message is (SPEC §3).

GSM-7 (GSM 03.38, encoded with ``gsm0338``): 160 septets in one part, 153 per part when split;
an extension-table character is an escape plus a septet, so it counts 2 and is never split
across parts. Anything the GSM alphabet cannot carry makes the whole message UCS-2: 70 UTF-16
units in one part, 67 per part, and a surrogate pair is never split. The signature is part of
the text as the handset shows it, so it counts toward the length.
"""

from __future__ import annotations

from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}
MAX_PARTS = 63  # receipts per part are tracked in a 64-bit mask


@dataclass(frozen=True, slots=True)
class Segmentation:
    encoding: str
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int


def signed_text(signature: str, body: str) -> str:
    """The text as the handset shows it: 【signature】 then the body."""
    return f"【{signature}】{body}" if signature else body


def _unit_sizes(text: str) -> tuple[str, list[int]]:
    sizes: list[int] = []
    try:
        for ch in text:
            sizes.append(len(ch.encode("gsm03.38")))
        return GSM7, sizes
    except UnicodeEncodeError:
        return UCS2, [len(ch.encode("utf-16-le")) // 2 for ch in text]


def segment(text: str) -> Segmentation:
    encoding, sizes = _unit_sizes(text)
    single, multi = _LIMITS[encoding]
    units = sum(sizes)
    if units <= single:
        return Segmentation(encoding, units, 1 if units else 1)
    parts, used = 1, 0
    for size in sizes:  # greedy packing: an escape pair or surrogate pair stays whole
        if used + size > multi:
            parts += 1
            used = 0
        used += size
    return Segmentation(encoding, units, parts)
