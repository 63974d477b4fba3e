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
        self._data: dict[str, pa.Table] = {}
        self._parents: dict[tuple[str, str], pa.Array] = {}

    def _table(self, name: str):
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(f"{self.namespace}.{name}")
        except NoSuchTableError:
            raise TableMissing(f"table {self.namespace}.{name} missing in Iceberg") from None

    def prepare(self, table: str, checks: Iterable[Check]) -> None:
        """Scan the columns every check of ``table`` reads, once, so all of them see the same snapshot."""
        lake_table = self._table(table)
        present = {f.name for f in lake_table.schema().fields}
        wanted: dict[str, None] = {}
        for check in checks:
            wanted.update(dict.fromkeys(c for c in (*check.example_columns, check.event_time) if c in present))
        self._data[table] = lake_table.scan(selected_fields=tuple(wanted) or ("*",)).to_arrow()

    def _parent(self, table: str, column: str) -> pa.Array:
        if (table, column) not in self._parents:
            lake_table = self._table(table)
            if column not in {f.name for f in lake_table.schema().fields}:
                raise LookupError(f"column {column} not in Iceberg table {self.namespace}.{table}")
            values = lake_table.scan(selected_fields=(column,)).to_arrow()[column]
            self._parents[(table, column)] = pc.unique(values.combine_chunks() if values.num_chunks else pa.array([], values.type))
        return self._parents[(table, column)]

    def evaluate(self, check: Check, slo_s: float) -> Outcome:
        if check.table not in self._data:
            self.prepare(check.table, [check])
        data = self._data[check.table]
        absent = [c for c in (*check.columns, *([check.event_time] if check.recent_s else [])) if c not in data.column_names]
        if absent:
            raise LookupError(f"column {', '.join(absent)} not in Iceberg table {self.namespace}.{check.table}")
        if check.recent_s:
            data = data.filter(pc.fill_null(pc.greater_equal(data[check.event_time], _cutoff(data[check.event_time].type, check.recent_s)), False))
        if check.kind == "freshness":
            newest = pc.max(data[check.column]).as_py() if data.num_rows else None
            return freshness_outcome(data.num_rows, newest, dt.datetime.now(dt.timezone.utc), slo_s)
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
