"""What a check run produces, independent of the store it ran against."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

#: Most example failing rows kept per check (in reports and in `quality_results`).
MAX_EXAMPLES = 5
PASS, FAIL, SKIPPED, ERROR = "pass", "fail", "skipped", "error"


class TableMissing(LookupError):
    """The table a check reads does not exist in the store (yet): the check is skipped, not failed."""


class Outcome(NamedTuple):
    rows_tested: int
    failures: int
    examples: list[dict[str, Any]]
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    check: str  # the check's name, e.g. "not_null(event_id)"
    kind: str  # not_null, unique, accepted_values, accepted_range, relationships, freshness
    table: str
    store: str  # clickhouse or iceberg
    status: str  # pass, fail, skipped, error
    rows_tested: int
    failures: int  # failing rows; for unique, duplicated key values; for freshness, 1 when stale
    examples: list[dict[str, Any]] = field(default_factory=list)  # up to MAX_EXAMPLES failing rows
    detail: str = ""  # why it was skipped or errored, or what a freshness check measured
    run_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    run_id: str = ""

    @property
    def ok(self) -> bool:
        """Passed or skipped: what a run needs from every check to succeed."""
        return self.status in (PASS, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_at"] = self.run_at.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        """The inverse of :meth:`to_dict` (results passed between Airflow tasks as JSON)."""
        return cls(**{**data, "run_at": dt.datetime.fromisoformat(data["run_at"])})


def jsonable(value: Any) -> Any:
    """A cell of an example row as JSON can carry it (timestamps as ISO-8601, NaN as a string)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def example_rows(columns: list[str] | tuple[str, ...], rows: list[Any]) -> list[dict[str, Any]]:
    return [{c: jsonable(v) for c, v in zip(columns, row)} for row in rows[:MAX_EXAMPLES]]


def freshness_outcome(fresh_rows: int, newest: dt.datetime | None, now: dt.datetime, slo_s: float) -> Outcome:
    """Shared by both stores: stale (or empty) is one failure, with the newest event time as the example.
    The rows tested are the rows newer than the SLO."""
    if newest is None:
        return Outcome(fresh_rows, 1, [], f"no rows (slo {slo_s:g}s)")
    if newest.tzinfo is None:  # both stores keep UTC
        newest = newest.replace(tzinfo=dt.timezone.utc)
    age_s = round((now - newest).total_seconds(), 3)
    example = {"newest": newest.isoformat(), "age_s": age_s, "slo_s": slo_s}
    stale = age_s > slo_s
    return Outcome(fresh_rows, int(stale), [example] if stale else [], f"newest {newest.isoformat(timespec='seconds')}, {age_s:.0f}s old (slo {slo_s:g}s)")
