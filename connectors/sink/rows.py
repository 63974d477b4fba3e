"""JSON records → typed rows for a ClickHouse table, or a reason why a record does not fit.

The conversion is strict and deterministic on purpose: a retried batch must turn the same records
into the same rows (else the retry would not be deduplicated), and a record the table cannot hold
exactly — an unknown field, a wrong type, a number out of range — must be rejected with the reason
rather than coerced. Timestamps become integer ticks at the column's precision, which
clickhouse-connect writes without another conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Sequence

import orjson

from twitch_pipeline.errors import PlatformError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_WRAPPER = re.compile(r"^(?:LowCardinality|Nullable)\((.*)\)$")
_INT = re.compile(r"^(U?)Int(8|16|32|64)$")
_DATETIME64 = re.compile(r"^DateTime64\((\d)(?:,\s*'[^']*')?\)$")
_DATETIME = re.compile(r"^DateTime(?:\('[^']*'\))?$")


class Rejected(ValueError):
    """A record that does not fit its table; the message is the reason sent to the dead-letter topic."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # ClickHouse type as `system.columns` spells it

    @property
    def nullable(self) -> bool:
        return "Nullable(" in self.type

    @property
    def base_type(self) -> str:
        name = self.type
        while (inner := _WRAPPER.match(name)) is not None:
            name = inner.group(1)
        return name


Convert = Callable[[Any], Any]


def _string(value: Any) -> str:
    if type(value) is not str:
        raise ValueError(f"expected a string, got {_show(value)}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected true or false, got {_show(value)}")
    return value


def _integer(unsigned: bool, bits: int) -> Convert:
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def convert(value: Any) -> int:
        if type(value) is not int:
            raise ValueError(f"expected an integer, got {_show(value)}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range [{low}, {high}]")
        return value

    return convert


def _float(value: Any) -> float:
    if type(value) not in (int, float):
        raise ValueError(f"expected a number, got {_show(value)}")
    return float(value)


def _parse_timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise ValueError(f"expected an ISO-8601 timestamp string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _ticks(scale: int) -> Convert:
    tick = timedelta(microseconds=1) * 10 ** (6 - scale) if scale <= 6 else None

    def convert(value: Any) -> int:
        elapsed = _parse_timestamp(value) - _EPOCH
        if tick is not None:
            return elapsed // tick
        return (elapsed // timedelta(microseconds=1)) * 10 ** (scale - 6)

    return convert


def _date(value: Any) -> date:
    if type(value) is not str:
        raise ValueError(f"expected a date string, got {_show(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return f"{text[:40]}{'…' if len(text) > 40 else ''} ({type(value).__name__})"


def converter(column: Column) -> Convert:
    """The function turning one JSON value into what clickhouse-connect writes for ``column``."""
    base = column.base_type
    if base == "String" or base.startswith("FixedString("):
        return _string
    if base == "Bool":
        return _bool
    if base in ("Float32", "Float64"):
        return _float
    if base == "Date" or base == "Date32":
        return _date
    if (match := _INT.match(base)) is not None:
        return _integer(match.group(1) == "U", int(match.group(2)))
    if (match := _DATETIME64.match(base)) is not None:
        return _ticks(int(match.group(1)))
    if _DATETIME.match(base):
        return _ticks(0)
    raise PlatformError(f"column {column.name} has type {column.type}, which the sink cannot fill from JSON; extend connectors/sink/rows.py")


def ticks_per_second(column: Column) -> int:
    match = _DATETIME64.match(column.base_type)
    return 10 ** int(match.group(1)) if match else 1


class RowConverter:
    """Turns the JSON value of a record into a row tuple in the table's column order."""

    def __init__(self, table: str, columns: Sequence[Column], event_time: str | None = None):
        if not columns:
            raise PlatformError(f"table {table} has no insertable columns (does it exist? run `twitch-pipeline up` to apply migrations)")
        self.table = table
        self.columns = tuple(columns)
        self._known = frozenset(c.name for c in columns)
        self._fields = [(c.name, converter(c), c.nullable, c.type) for c in columns]
        self.event_time_index: int | None = None
        self.event_ticks_per_second = 1
        if event_time is not None:
            names = [c.name for c in columns]
            if event_time not in names:
                raise PlatformError(f"event-time column {event_time} of the mapping is not a column of {table}")
            self.event_time_index = names.index(event_time)
            self.event_ticks_per_second = ticks_per_second(columns[self.event_time_index])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [c.type for c in self.columns]

    def convert(self, value: bytes | None) -> tuple:
        if value is None:
            raise Rejected("record has no value")
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Rejected(f"invalid JSON: {exc}") from None
        if type(record) is not dict:
            raise Rejected(f"JSON value is not an object but {type(record).__name__}")
        if not record.keys() <= self._known:
            unknown = sorted(set(record) - self._known)
            raise Rejected(f"unknown column(s) {', '.join(unknown)} for table {self.table}")
        row = []
        for name, convert, nullable, type_name in self._fields:
            value = record.get(name)
            if value is None:
                if not nullable:
                    raise Rejected(f"column {name} ({type_name}) is {'null' if name in record else 'missing'} but not Nullable")
                row.append(None)
                continue
            try:
                row.append(convert(value))
            except ValueError as exc:
                raise Rejected(f"column {name} ({type_name}): {exc}") from None
        return tuple(row)
