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
    """Entries are tuples ``(id, at, direction, account, command, bind, pdu, extra)`` — a PDU kept by
    reference, written out only when someone reads the journal: four PDUs a message at tens of
    thousands of messages a second must cost an append each, not a dict."""

    def __init__(self, max_entries: int = DEFAULT_MAX):
        self.max_entries = max_entries
        self._entries: deque[tuple] = deque(maxlen=max_entries or None)
        self._next = 1
        self.enabled = max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def pdu(self, at: float, direction: str, account: str | None, bind: int, pdu) -> None:
        """A PDU in (from the client) or out: a Pdu, or a frame's octets (decoded when read)."""
        if self.enabled:
            self._entries.append((self._next, at, direction, account, None, bind, pdu, None))
            self._next += 1

    def add(self, at: float, direction: str, account: str | None, command: str, **fields: Any) -> None:
        """Anything else: a connection, a drop, an undecodable frame, an API call (``fields``
        tell it apart)."""
        if self.enabled:
            bind = fields.pop("bind", None)
            self._entries.append((self._next, at, direction, account, command, bind, None, fields))
            self._next += 1

    def page(self, *, after: int = 0, limit: int = 50, account: str | None = None,
             command: str | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Entries with an id above ``after``, oldest first; the cursor is the last id, or None."""
        out: list[tuple] = []
        entries = self._entries
        # ids are consecutive, so the first entry past ``after`` is found by arithmetic
        start = 0 if not entries else max(0, after - entries[0][0] + 1)
        for i in range(start, len(entries)):
            entry = entries[i]
            if (account is None or entry[3] == account) and (command is None or _command(entry) == command):
                out.append(entry)
                if len(out) > limit:
                    break
        more = len(out) > limit
        out = out[:limit]
        return [_shown(entry) for entry in out], (out[-1][0] if more and out else None)


def _command(entry: tuple) -> str:
    pdu = entry[6]
    if pdu is None:
        return entry[4]
    if type(pdu) is bytes:
        from gateway.wire.smpp.pdu import command_name

        return command_name(int.from_bytes(pdu[4:8], "big"))
    return pdu.command


def _shown(entry: tuple) -> dict[str, Any]:
    """An entry as the API shows it (bytes as text where they are text, else hex; passwords hidden)."""
    entry_id, at, direction, account, command, bind, pdu, extra = entry
    shown: dict[str, Any] = {"id": entry_id, "at": at, "direction": direction, "account": account,
                             "command": _command(entry)}
    if bind is not None:
        shown["bind"] = bind
    if pdu is None:
        shown.update(extra or {})
        return shown
    from gateway.wire.smpp.pdu import decode, status_name

    if type(pdu) is bytes:
        pdu = decode(pdu)
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
