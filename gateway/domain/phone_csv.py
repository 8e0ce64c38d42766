"""The ``phone`` column of an uploaded CSV file, read as the bytes arrive.

An audience upload may be hundreds of megabytes, so the file is never held whole: ``feed`` takes
each chunk from the socket and returns the phone values of the records it completed. Records
follow RFC 4180: a quoted field may hold commas, doubled quotes and line breaks, so a record ends
at a line break only when the quotes before it are balanced (counted per line with
``str.count``, which keeps the reader at C speed; ``csv`` then parses the one record).

Every entry counts (SPEC §3: audience_size = sent + skipped): a blank line after the header is an
``empty`` entry, not a line to skip. Blank lines before the header are ignored.

Bad input is a ``CsvError`` naming the line, never another exception: bytes that are not UTF-8,
a record longer than ``max_record`` characters (an unbalanced quote would otherwise swallow the
rest of the file into one field), a malformed quoted field, a header without a ``phone`` column.
"""

from __future__ import annotations

import codecs
import csv

MAX_RECORD = 512 * 1024  # characters in one record (its physical lines together)

# the csv module refuses fields over 131,072 characters by default; a record is bounded above
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD + 1))


class CsvError(ValueError):
    """Bad CSV input; the message names the line (1-based, physical lines)."""


class PhoneColumnReader:
    def __init__(self, column: str = "phone", max_record: int = MAX_RECORD):
        self.column_name = column
        self.max_record = max_record
        self.column: int | None = None  # the phone column's index, once the header was read
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._tail = ""  # text after the last line break
        self._record: list[str] = []  # physical lines of the record being read
        self._record_chars = 0
        self._quotes = 0  # quote characters in ``_record``
        self._line = 0  # physical lines completed
        self._record_start = 1

    def feed(self, data: bytes) -> list[str | None]:
        """The phone values of the records completed by ``data`` (None for a record without one)."""
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError:
            raise CsvError(f"line {self._line + self._tail.count(chr(10)) + 1}: not UTF-8") from None
        if not text:
            return []
        self._refuse_nul(text)
        lines = (self._tail + text).split("\n")
        self._tail = lines.pop()
        if len(self._tail) + self._record_chars > self.max_record:
            raise self._too_long()
        out: list[str | None] = []
        for line in lines:
            self._take_line(line, out)
        return out

    def finish(self) -> list[str | None]:
        """The last record (a file need not end with a line break), after checking the header."""
        try:
            tail = self._tail + self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvError(f"line {self._line + 1}: not UTF-8") from None
        self._refuse_nul(tail)
        self._tail = ""
        out: list[str | None] = []
        if tail or self._record:
            self._take_line(tail, out)
        if self._record:
            raise CsvError(f"line {self._record_start}: a quoted field is never closed")
        if self.column is None:
            raise CsvError(f"line 1: the CSV is empty; it needs a header row with a {self.column_name!r} column")
        return out

    def _refuse_nul(self, text: str) -> None:
        """No phone number holds U+0000, and PostgreSQL cannot store it: the line that has one is
        refused, on either backend."""
        at = text.find("\x00")
        if at >= 0:
            line = self._line + self._tail.count("\n") + text.count("\n", 0, at) + 1
            raise CsvError(f"line {line}: the character U+0000")

    # -- records ------------------------------------------------------------------------------
    def _take_line(self, line: str, out: list[str | None]) -> None:
        self._line += 1
        if not self._record and '"' not in line and self.column is not None:
            # the usual line: one record, no quotes, so its fields are what is between commas
            if len(line) >= self.max_record:
                self._record_start = self._line
                self._record.append(line)
                raise self._too_long()
            if line.endswith("\r"):
                line = line[:-1]
            if not line.strip():
                out.append(None)
                return
            fields = line.split(",")
            out.append(fields[self.column] if self.column < len(fields) else None)
            return
        if not self._record:
            self._record_start = self._line
        self._record.append(line)
        self._record_chars += len(line) + 1
        self._quotes += line.count('"')
        if self._record_chars > self.max_record:
            raise self._too_long()
        if self._quotes % 2:
            return  # inside a quoted field: the record goes on on the next line
        record = "\n".join(self._record)
        self._record = []
        self._record_chars = self._quotes = 0
        if record.endswith("\r"):
            record = record[:-1]
        value = self._parse(record)
        if value is not _SKIP:
            out.append(value)

    def _parse(self, record: str):
        if not record.strip():
            return _SKIP if self.column is None else None
        try:
            fields = next(csv.reader([record], strict=True), [])
        except csv.Error as exc:
            raise CsvError(f"line {self._record_start}: {exc}") from None
        if self.column is None:
            header = [f.strip().lower() for f in fields]
            if self.column_name not in header:
                raise CsvError(f"line {self._record_start}: the header row needs a {self.column_name!r} column")
            self.column = header.index(self.column_name)
            return _SKIP
        return fields[self.column] if self.column < len(fields) else None

    def _too_long(self) -> CsvError:
        start = self._record_start if self._record else self._line + 1
        return CsvError(f"line {start}: a record longer than {self.max_record} characters"
                        " (an unclosed quote, or not a CSV of phone numbers)")


_SKIP = object()
