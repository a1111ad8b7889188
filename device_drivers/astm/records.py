"""ASTM E1394-97 (CLSI LIS02-A2) records: delimiters, escapes, typed records.

Section numbers of E1394-97: §5.4 delimiters (field, repeat, component, escape, all
defined by the header), §5.5 escape sequences (``&F& &S& &R& &E&``, ``&Xhh..&``),
§6.6.1 date and time ``YYYYMMDDHHMMSS``, §7 header H, §8 patient P, §9 order O,
§10 result R, §11 comment C, §12 request information Q, §13 terminator L,
§15 manufacturer information M. Fields are numbered as the standard does: field 1 is the
record type, so ``record.text(3)`` is what the standard calls ``x.1.3``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from device_drivers.astm.errors import RecordError

__all__ = [
    "AnyRecord",
    "CommentRecord",
    "Delimiters",
    "HeaderRecord",
    "ManufacturerRecord",
    "OrderRecord",
    "PatientRecord",
    "QueryRecord",
    "Record",
    "ResultRecord",
    "TerminatorRecord",
    "UniversalTestId",
    "parse_message",
    "parse_record",
    "parse_timestamp",
]

_TIME_FORMATS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four delimiters of §5.4; they must be distinct printable characters."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    @classmethod
    def from_header(cls, record: str) -> Delimiters:
        """Read ``H<field><repeat><component><escape><field>`` (§7.1.2)."""
        if len(record) < 5 or record[0] != "H":
            raise RecordError("a header record starts with H and four delimiters", record)
        found = cls(record[1], record[2], record[3], record[4])
        chars = (found.field, found.repeat, found.component, found.escape)
        if len(set(chars)) != 4 or any(c.isalnum() or not c.isprintable() for c in chars):
            raise RecordError(f"invalid delimiters {''.join(chars)!r}", record)
        if len(record) > 5 and record[5] != found.field:
            raise RecordError("the delimiter field must end with the field delimiter", record)
        return found

    def unescape(self, text: str) -> str:
        """Undo §5.5 escapes; unknown sequences (e.g. highlighting) are kept as sent."""
        if self.escape not in text:
            return text
        e = re.escape(self.escape)
        return re.sub(f"{e}([^{e}]*){e}", self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        code = match.group(1)
        table = {"F": self.field, "S": self.component, "R": self.repeat, "E": self.escape}
        if code in table:
            return table[code]
        if code[:1] == "X" and len(code) > 1 and len(code) % 2 == 1:
            try:
                return bytes.fromhex(code[1:]).decode("latin-1")
            except ValueError:
                return match.group(0)
        return match.group(0)


@dataclass(frozen=True, slots=True)
class Record:
    """One record split in raw fields; accessors unescape on the way out."""

    type: str
    fields: tuple[str, ...]  # raw; fields[0] is field 1 (the record type)
    delimiters: Delimiters

    def raw(self, number: int) -> str:
        """Field ``number`` (1-based) as sent, empty when absent."""
        return self.fields[number - 1] if 0 < number <= len(self.fields) else ""

    def repeats(self, number: int) -> tuple[tuple[str, ...], ...]:
        """Field split in repeats, then components, each unescaped."""
        d = self.delimiters
        raw = self.raw(number)
        return tuple(tuple(d.unescape(c) for c in rep.split(d.component))
                     for rep in raw.split(d.repeat))

    def components(self, number: int) -> tuple[str, ...]:
        """Components of the first repeat of a field."""
        return self.repeats(number)[0]

    def text(self, number: int) -> str:
        """A simple field: the first component of the first repeat, unescaped."""
        return self.components(number)[0]

    def sequence(self) -> int | None:
        """Field 2, the sequence number, or None when it is not a number."""
        raw = self.text(2).strip()
        return int(raw) if raw.isdigit() else None


@dataclass(frozen=True, slots=True)
class UniversalTestId:
    """Universal test ID (§10.1.3, §9.4.5): ``id^name^type^local code^...``."""

    universal: str
    name: str
    id_type: str
    local: tuple[str, ...]

    @classmethod
    def from_components(cls, parts: Sequence[str]) -> UniversalTestId:
        padded = [*parts, "", "", ""]
        return cls(padded[0], padded[1], padded[2], tuple(parts[3:]))

    @property
    def code(self) -> str:
        """The code used for mapping: manufacturer's local code, else the universal id."""
        for candidate in (*self.local[:1], self.universal, self.name):
            if candidate.strip():
                return candidate.strip()
        return ""


def parse_timestamp(text: str) -> datetime | None:
    """§6.6.1 ``YYYYMMDD[HHMM[SS]]`` as a naive datetime; empty -> None."""
    text = text.strip()
    if not text:
        return None
    fmt = _TIME_FORMATS.get(len(text))
    if fmt is None or not text.isdigit():
        raise RecordError(f"bad date/time {text!r}", text)
    try:
        return datetime.strptime(text, fmt)
    except ValueError as exc:
        raise RecordError(f"bad date/time {text!r}", text) from exc


@dataclass(frozen=True, slots=True)
class HeaderRecord:
    """§7 message header."""

    record: Record
    message_id: str
    sender: tuple[str, ...]
    processing_id: str
    version: str
    timestamp: str

    @classmethod
    def build(cls, r: Record) -> HeaderRecord:
        return cls(r, r.text(3), r.components(5), r.text(12), r.text(13), r.text(14))


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """§8 patient information: three patient ids, name, birth date, sex."""

    record: Record
    sequence: int | None
    practice_id: str
    laboratory_id: str
    patient_id_3: str
    name: tuple[str, ...]
    birthdate: str
    sex: str

    @classmethod
    def build(cls, r: Record) -> PatientRecord:
        return cls(r, r.sequence(), r.text(3), r.text(4), r.text(5), r.components(6),
                   r.text(8), r.text(9))

    @property
    def patient_ref(self) -> str | None:
        """The first non-empty of practice, laboratory and third patient id."""
        for value in (self.practice_id, self.laboratory_id, self.patient_id_3):
            if value.strip():
                return value.strip()
        return None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """§9 test order: specimen ids, ordered tests, collection time, report type."""

    record: Record
    sequence: int | None
    specimen_id: str
    instrument_specimen_id: str
    tests: tuple[UniversalTestId, ...]
    collected: str
    report_type: str

    @classmethod
    def build(cls, r: Record) -> OrderRecord:
        tests = tuple(UniversalTestId.from_components(rep) for rep in r.repeats(5))
        return cls(r, r.sequence(), r.text(3), r.text(4), tests, r.text(8), r.text(26))


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """§10 result: test id, value, units, range, flags, status, completion time."""

    record: Record
    sequence: int | None
    test: UniversalTestId
    value: str
    units: str
    reference_range: str
    abnormal_flags: tuple[str, ...]
    nature: str
    status: str
    operator: str
    started: str
    completed: str
    instrument: str

    @classmethod
    def build(cls, r: Record) -> ResultRecord:
        flags = tuple(rep[0] for rep in r.repeats(7) if rep[0])
        return cls(r, r.sequence(), UniversalTestId.from_components(r.components(3)),
                   r.text(4), r.text(5), r.text(6), flags, r.text(8), r.text(9), r.text(11),
                   r.text(12), r.text(13), r.text(14))


@dataclass(frozen=True, slots=True)
class CommentRecord:
    """§11 comment: source, text (components joined by spaces), comment type."""

    record: Record
    sequence: int | None
    source: str
    text: str
    comment_type: str

    @classmethod
    def build(cls, r: Record) -> CommentRecord:
        text = " ".join(c for c in r.components(4) if c)
        return cls(r, r.sequence(), r.text(3), text, r.text(5))


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """§12 request information: range of specimens, tests, time limits, status codes."""

    record: Record
    sequence: int | None
    starting_range: tuple[str, ...]
    ending_range: tuple[str, ...]
    tests: tuple[UniversalTestId, ...]
    begin: str
    end: str
    status_codes: str

    @classmethod
    def build(cls, r: Record) -> QueryRecord:
        tests = tuple(UniversalTestId.from_components(rep) for rep in r.repeats(5))
        return cls(r, r.sequence(), r.components(3), r.components(4), tests, r.text(7),
                   r.text(8), r.text(13))


@dataclass(frozen=True, slots=True)
class TerminatorRecord:
    """§13 message terminator: code N normal, T sender abort, R receiver abort, ..."""

    record: Record
    sequence: int | None
    code: str

    @classmethod
    def build(cls, r: Record) -> TerminatorRecord:
        return cls(r, r.sequence(), r.text(3))


@dataclass(frozen=True, slots=True)
class ManufacturerRecord:
    """§15 manufacturer information: content is vendor defined, kept raw."""

    record: Record
    sequence: int | None

    @classmethod
    def build(cls, r: Record) -> ManufacturerRecord:
        return cls(r, r.sequence())


AnyRecord = (HeaderRecord | PatientRecord | OrderRecord | ResultRecord | CommentRecord
             | QueryRecord | TerminatorRecord | ManufacturerRecord | Record)

_BUILDERS: dict[str, Callable[[Record], AnyRecord]] = {
    "H": HeaderRecord.build, "P": PatientRecord.build, "O": OrderRecord.build,
    "R": ResultRecord.build, "C": CommentRecord.build, "Q": QueryRecord.build,
    "L": TerminatorRecord.build, "M": ManufacturerRecord.build}


def parse_record(text: str, delimiters: Delimiters | None = None) -> AnyRecord:
    """Parse one record (no trailing CR). A header sets its own delimiters (§7.1.2).

    Unknown record types (S scientific, vendor letters) come back as a plain ``Record``.
    """
    text = text.rstrip("\r\n")
    if not text:
        raise RecordError("empty record", text)
    if any(ord(c) < 0x20 for c in text):
        raise RecordError("control character inside a record", text)
    if text[0] == "H":
        d = Delimiters.from_header(text)
        rest = text[6:].split(d.field) if len(text) > 6 else []
        record = Record("H", ("H", text[2:5], *rest), d)
    else:
        d = delimiters or Delimiters()
        fields = tuple(text.split(d.field))
        record = Record(fields[0][:1].upper(), fields, d)
    builder = _BUILDERS.get(record.type)
    return builder(record) if builder else record


def parse_message(records: Sequence[str]) -> list[AnyRecord]:
    """Parse a message; delimiters come from its header (defaults when there is none)."""
    delimiters = Delimiters()
    parsed: list[AnyRecord] = []
    for text in records:
        record = parse_record(text, delimiters)
        if isinstance(record, HeaderRecord):
            delimiters = record.record.delimiters
        parsed.append(record)
    return parsed
