"""Checks on the Iceberg lake: each table is scanned once (only the columns its checks read, one snapshot)
into Arrow, and every check is evaluated with pyarrow compute, with the same semantics as the SQL in
``clickhouse_store.py`` (NULLs pass every check but not_null; NaN is in no range)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from connectors.quality.results import MAX_EXAMPLES, Outcome, TableMissing, example_rows, freshness_outcome
from connectors.quality.spec import Check


def _is_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def failing(check: Check, column: pa.ChunkedArray, parent_values: pa.Array | None = None) -> pa.ChunkedArray:
    """A boolean mask of the failing rows (row-level checks), never null."""
    if check.kind == "not_null":
        return column.is_null()
    if check.kind == "not_empty_string":
        if not _is_string(column.type):
            raise LookupError(f"not_empty_string needs a string column; {check.column} is {column.type}")
        return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), False)
    if check.kind == "accepted_values":
        outside = pc.invert(pc.is_in(column, value_set=pa.array(list(check.values)).cast(column.type)))
    elif check.kind == "accepted_range":
        low, high = (pc.greater_equal, pc.less_equal) if check.inclusive else (pc.greater, pc.less)
        within = None
        for compare, bound in ((low, check.min_value), (high, check.max_value)):
            if bound is not None:
                part = compare(column, bound)
                within = part if within is None else pc.and_kleene(within, part)
        outside = pc.invert(within)  # NaN compares false with every bound, so it is outside any range
    elif check.kind == "relationships":
        outside = pc.invert(pc.is_in(column, value_set=parent_values))
    else:
        raise ValueError(f"{check.kind} is not a row-level check")
    return pc.fill_null(pc.and_(column.is_valid(), outside), False)


def duplicates(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Key values present more than once, with their number of copies, most copied first."""
    counted = data.select(list(keys)).group_by(list(keys)).aggregate([([], "count_all")]).rename_columns([*keys, "copies"])
    repeated = counted.filter(pc.greater(counted["copies"], 1))
    return repeated.sort_by([("copies", "descending"), *((k, "ascending") for k in keys)])


class LakeStore:
    """Runs checks with a pyiceberg catalog on the tables of one namespace."""

    name = "iceberg"

    def __init__(self, catalog, namespace: str) -> None:
        self.catalog = catalog
        self.namespace = namespace
        self._tables: dict[str, Any] = {}
        self._data: dict[str, pa.Table] = {}
        self._parents: dict[tuple[str, str], pa.Array] = {}

    def table(self, name: str):
        from pyiceberg.exceptions import NoSuchTableError

        if name not in self._tables:
            try:
                self._tables[name] = self.catalog.load_table(f"{self.namespace}.{name}")
            except NoSuchTableError:
                raise TableMissing(f"table {self.namespace}.{name} missing in Iceberg") from None
        return self._tables[name]

    def _columns(self, name: str) -> dict[str, Any]:
        return {f.name: f.field_type for f in self.table(name).schema().fields}

    def prepare(self, table: str, checks: Iterable[Check]) -> None:
        """Scan the columns the row checks of ``table`` read, once, so all of them see the same snapshot; only the
        day's rows when the run is for a day (the filter prunes data files by their column statistics)."""
        present = self._columns(table)
        row_checks = [c for c in checks if c.kind != "freshness"]
        if not row_checks:
            return
        days = {(c.event_time, c.day_range) for c in row_checks}
        if len(days) > 1:
            raise ValueError(f"the checks of {table} are scoped to different days or event-time columns: {sorted(map(str, days))}")
        ((event_time, day_range),) = days
        wanted: dict[str, None] = {}
        for check in row_checks:
            wanted.update(dict.fromkeys(c for c in (*check.example_columns, check.event_time) if c in present))
        from pyiceberg.expressions import AlwaysTrue

        row_filter = self.between(table, event_time, *day_range) if day_range and event_time in present else AlwaysTrue()
        self._data[table] = self.table(table).scan(row_filter=row_filter, selected_fields=tuple(wanted) or ("*",)).to_arrow()

    def between(self, table: str, column: str, start: dt.datetime, end: dt.datetime | None = None):
        """A pyiceberg filter ``start <= column < end`` (``end`` None: no upper bound)."""
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

        def moment(t: dt.datetime) -> str:  # a zone-less lake timestamp holds UTC
            return t.isoformat() if str(self._columns(table)[column]) == "timestamptz" else t.replace(tzinfo=None).isoformat()

        lower = GreaterThanOrEqual(column, moment(start))
        return lower if end is None else And(lower, LessThan(column, moment(end)))

    def _parent(self, table: str, column: str) -> pa.Array:
        if (table, column) not in self._parents:
            if column not in self._columns(table):
                raise LookupError(f"column {column} not in Iceberg table {self.namespace}.{table}")
            values = self.table(table).scan(selected_fields=(column,)).to_arrow()[column]
            self._parents[(table, column)] = pc.unique(values.combine_chunks() if values.num_chunks else pa.array([], values.type))
        return self._parents[(table, column)]

    def _freshness(self, check: Check, slo_s: float) -> Outcome:
        """Only the rows newer than the SLO are read (pruned by file statistics); the whole column only when there
        are none, to say how old the newest row is."""
        if check.column not in self._columns(check.table):
            raise LookupError(f"column {check.column} not in Iceberg table {self.namespace}.{check.table}")
        now = dt.datetime.now(dt.timezone.utc)
        lake_table = self.table(check.table)
        fresh = lake_table.scan(row_filter=self.between(check.table, check.column, now - dt.timedelta(seconds=slo_s)),
                                selected_fields=(check.column,)).to_arrow()[check.column]
        if not len(fresh):
            fresh_rows, column = 0, lake_table.scan(selected_fields=(check.column,)).to_arrow()[check.column]
        else:
            fresh_rows, column = len(fresh), fresh
        newest = pc.max(column).as_py() if len(column) else None
        return freshness_outcome(fresh_rows, newest, now, slo_s)

    def evaluate(self, check: Check, slo_s: float) -> Outcome:
        if check.kind == "freshness":
            return self._freshness(check, slo_s)
        if check.table not in self._data:
            self.prepare(check.table, [check])
        data = self._data[check.table]
        absent = [c for c in (*check.columns, *([check.event_time] if check.recent_s or check.day else [])) if c not in data.column_names]
        if absent:
            raise LookupError(f"column {', '.join(absent)} not in Iceberg table {self.namespace}.{check.table}")
        if check.recent_s:
            data = data.filter(pc.fill_null(pc.greater_equal(data[check.event_time], _cutoff(data[check.event_time].type, check.recent_s)), False))
        if check.kind == "unique":
            repeated = duplicates(data, check.columns)
            return Outcome(data.num_rows, repeated.num_rows, example_rows(repeated.column_names, _rows(repeated.slice(0, MAX_EXAMPLES))))
        parent = self._parent(check.to, check.field) if check.kind == "relationships" else None
        mask = failing(check, data[check.column], parent)
        failures = pc.sum(mask).as_py() or 0
        examples: list[dict[str, Any]] = []
        if failures:
            shown = [c for c in check.example_columns if c in data.column_names]
            failed = data.filter(mask).select(shown).sort_by([(c, "ascending") for c in shown]).slice(0, MAX_EXAMPLES)
            examples = example_rows(shown, _rows(failed))
        return Outcome(data.num_rows, failures, examples)


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [table[c].to_pylist() for c in table.column_names]
    return list(zip(*columns))


def _cutoff(type_: pa.DataType, recent_s: float) -> pa.Scalar:
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=recent_s)
    if pa.types.is_timestamp(type_) and type_.tz is None:  # a zone-less lake timestamp holds UTC
        cutoff = cutoff.replace(tzinfo=None)
    return pa.scalar(cutoff, type=type_)
