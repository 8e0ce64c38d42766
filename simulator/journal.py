"""The request journal: every PDU (or provider API call) in and out, newest kept, oldest dropped
past ``--journal-max``; a verification API in the manner of WireMock's request journal, so a test
can ask "which ``deliver_sm`` did my gateway not acknowledge?" without capturing packets.

Entries live in memory only: the journal is for looking at what just happened, and writing every
PDU to disk would cost more than the SMSC spends on the PDU itself.
"""

from __future__ import annotations

from collections import deque
from typing import Any

DEFAULT_MAX = 100_000


class Journal:
    def __init__(self, max_entries: int = DEFAULT_MAX):
        self.max_entries = max_entries
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries or None)
        self._next = 1
        self.enabled = max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, at: float, direction: str, account: str | None, command: str, **fields: Any) -> None:
        """``direction`` is ``in`` (from the client) or ``out``; ``fields`` are whatever tells the
        entry apart (bind, sequence, status, decoded fields)."""
        if not self.enabled:
            return
        self._entries.append({"id": self._next, "at": at, "direction": direction, "account": account,
                              "command": command, **fields})
        self._next += 1

    def page(self, *, after: int = 0, limit: int = 50, account: str | None = None,
             command: str | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Entries with an id above ``after``, oldest first; the cursor is the last id, or None."""
        out: list[dict[str, Any]] = []
        entries = self._entries
        # ids are consecutive, so the first entry past ``after`` is found by arithmetic
        start = 0 if not entries else max(0, after - entries[0]["id"] + 1)
        for i in range(start, len(entries)):
            entry = entries[i]
            if (account is None or entry["account"] == account) and (command is None or entry["command"] == command):
                out.append(entry)
                if len(out) > limit:
                    break
        more = len(out) > limit
        out = out[:limit]
        return [_shown(entry) for entry in out], (out[-1]["id"] if more and out else None)


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as the API shows it: a PDU kept by reference is written out here, when someone
    looks, not on the hot path (bytes as text where they are text, else hex)."""
    pdu = entry.get("pdu")
    if pdu is None:
        return dict(entry)
    from gateway.wire.smpp.pdu import status_name

    shown = {k: v for k, v in entry.items() if k != "pdu"}
    shown.update(sequence=pdu.sequence_number, status=status_name(pdu.command_status),
                 fields={k: ("********" if k == "password" else _plain(v)) for k, v in pdu.fields.items()
                         if not k.startswith("_")},
                 tlvs={str(k): _plain(v) for k, v in pdu.tlvs.items()})
    return shown


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("ascii")
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
        return {"hex": bytes(value).hex()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
