"""Which replies opt a number out of a workspace's messages ("STOP").

A reply opts out when its text, trimmed and case-folded, is one of the keywords, or starts with
one followed by a space or a punctuation mark: "stop", " Unsubscribe ", "TD", "STOP please" and
"Stop." do; "stopwatch", "STOP2" and "no" do not. Full-width letters count as the ASCII ones
(NFKC: "ＴＤ" is "TD"). The keywords come from
``Config.opt_out_keywords`` (environment ``SMSLAB_OPT_OUT_KEYWORDS``, comma-separated); the
default is ``STOP,UNSUBSCRIBE,TD`` (TD, 退订, is what Chinese carriers use).

Plain Python: no database, no web.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

DEFAULT_KEYWORDS: tuple[str, ...] = ("STOP", "UNSUBSCRIBE", "TD")


def parse_keywords(raw: str) -> tuple[str, ...]:
    """Keywords from a comma-separated setting: each trimmed, empty ones dropped, duplicates (in
    any case) kept once. An empty setting gives none: no reply opts out."""
    out: list[str] = []
    seen: set[str] = set()
    for item in raw.split(","):
        keyword = item.strip()
        if keyword and keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            out.append(keyword)
    return tuple(out)


def _fold(text: str) -> str:
    """Trimmed and case-folded, after NFKC: full-width letters typed on a phone ("ＴＤ") are the
    ASCII ones, and "STRASSE" matches "straße"."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _separates(ch: str) -> bool:
    """A space or a punctuation mark (Unicode categories Z*, P*, and the ASCII controls that are
    whitespace): what may follow a keyword at the start of a reply."""
    return ch.isspace() or unicodedata.category(ch)[0] in ("P", "Z")


def opt_out_keyword(text: str | None, keywords: Iterable[str]) -> str | None:
    """The keyword ``text`` opts out with (as configured), or None.

    When several keywords match at the start ("STOP" and "STOP ALL" for "stop all now"), the
    longest one is returned."""
    if not text:
        return None
    folded = _fold(text)
    if not folded:
        return None
    best: str | None = None
    for keyword in keywords:
        key = _fold(keyword)
        if not key or not folded.startswith(key):
            continue
        if len(folded) == len(key) or _separates(folded[len(key)]):
            if best is None or len(key) > len(_fold(best)):
                best = keyword.strip()
    return best
