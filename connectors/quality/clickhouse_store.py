"""Checks as ClickHouse SQL: one query counts rows tested and failures, a second fetches example rows.

Nothing here reads with FINAL: the tables are ReplacingMergeTrees, and FINAL would collapse exactly the
duplicates a `unique` check exists to find (the sink is exactly-once, so a duplicate row is a defect even
before a merge hides it).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from connectors.quality.results import MAX_EXAMPLES, Outcome, TableMissing, example_rows, freshness_outcome
from connectors.quality.spec import Check

_WRAPPER = re.compile(r"^(?:LowCardinality|Nullable)\((.*)\)$")


def ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def base_type(ch_type: str) -> str:
    while (inner := _WRAPPER.match(ch_type)) is not None:
        ch_type = inner.group(1)
    return ch_type


def is_string(ch_type: str) -> bool:
    base = base_type(ch_type)
    return base == "String" or base.startswith("FixedString")


def failing(check: Check, types: dict[str, str]) -> str:
    """The predicate a failing row satisfies (row-level checks). NULLs pass every check but not_null, as in dbt."""
    col = ident(check.column)
    if check.kind == "not_null":
        # A non-Nullable column cannot hold NULL (the sink dead-letters such records): nothing to find there.
        return f"isNull({col})" if "Nullable(" in types[check.column] else "false"
    if check.kind == "not_empty_string":
        if not is_string(types[check.column]):
            raise LookupError(f"not_empty_string needs a string column; {check.column} is {types[check.column]}")
        return f"trimBoth({col}) = ''"
    if check.kind == "accepted_values":
        return f"{col} NOT IN ({', '.join(literal(v) for v in check.values)})"
    if check.kind == "accepted_range":
        low, high = (">=", "<=") if check.inclusive else (">", "<")
        bounds = [f"{col} {low} {literal(check.min_value)}" if check.min_value is not None else "",
                  f"{col} {high} {literal(check.max_value)}" if check.max_value is not None else ""]
        # NOT (within) rather than (below OR above): NaN is within no range and must fail.
        return f"{col} IS NOT NULL AND NOT ({' AND '.join(b for b in bounds if b)})"
    if check.kind == "relationships":
        return f"{col} IS NOT NULL AND {col} NOT IN (SELECT {ident(check.field)} FROM {ident(check.to)})"
    raise ValueError(f"{check.kind} is not a row-level check")


def scope(check: Check) -> str:
    """The WHERE clause of the rows a check tests."""
    conditions = []
    if check.recent_s:
        conditions.append(f"{ident(check.event_time)} >= now64(3) - toIntervalSecond({int(check.recent_s)})")
    if check.day_range:
        start, end = (literal(t.strftime("%Y-%m-%d %H:%M:%S")) for t in check.day_range)
        conditions.append(f"{ident(check.event_time)} >= toDateTime64({start}, 3, 'UTC') AND {ident(check.event_time)} < toDateTime64({end}, 3, 'UTC')")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def counts_sql(check: Check, types: dict[str, str], slo_s: float = 0.0) -> str:
    table = ident(check.table)
    if check.kind == "unique":
        keys = ", ".join(ident(c) for c in check.columns)
        return (f"SELECT (SELECT count() FROM {table}{scope(check)}) AS tested, count() AS failures "
                f"FROM (SELECT {keys} FROM {table}{scope(check)} GROUP BY {keys} HAVING count() > 1)")
    if check.kind == "freshness":
        col = ident(check.column)
        # max() of no rows is the type's default (the epoch), so the count of all rows says whether there is a newest.
        return (f"SELECT countIf({col} >= now64(3) - toIntervalMillisecond({round(slo_s * 1000)})) AS tested, "
                f"if(count() > 0, max({col}), NULL) AS newest FROM {table}{scope(check)}")
    return f"SELECT count() AS tested, countIf({failing(check, types)}) AS failures FROM {table}{scope(check)}"


def examples_sql(check: Check, types: dict[str, str]) -> str:
    table = ident(check.table)
    if check.kind == "unique":
        keys = ", ".join(ident(c) for c in check.columns)
        return (f"SELECT {keys}, count() AS copies FROM {table}{scope(check)} GROUP BY {keys} HAVING copies > 1 "
                f"ORDER BY copies DESC, {keys} LIMIT {MAX_EXAMPLES}")
    shown = ", ".join(ident(c) for c in check.example_columns if c in types)
    where = scope(check)
    where = f"{where} AND ({failing(check, types)})" if where else f" WHERE {failing(check, types)}"
    return f"SELECT {shown} FROM {table}{where} ORDER BY {shown} LIMIT {MAX_EXAMPLES}"


class ClickHouseStore:
    """Runs checks with one clickhouse-connect client (in the project's database)."""

    name = "clickhouse"

    def __init__(self, client) -> None:
        self.client = client
        self._types: dict[str, dict[str, str]] = {}

    def types(self, table: str) -> dict[str, str]:
        """Column name -> ClickHouse type; TableMissing when the table does not exist."""
        if table not in self._types:
            rows = self.client.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position",
                parameters={"t": table},
            ).result_rows
            if not rows:
                raise TableMissing(f"table {table} missing in ClickHouse")
            self._types[table] = dict(rows)
        return self._types[table]

    def prepare(self, table: str, checks: object) -> None:
        self.types(table)

    def evaluate(self, check: Check, slo_s: float) -> Outcome:
        types = self.types(check.table)
        needed = [*check.columns, *([check.event_time] if check.recent_s or check.day else [])]
        absent = [c for c in needed if c not in types]
        if absent:
            raise LookupError(f"column {', '.join(absent)} not in ClickHouse table {check.table}")
        if check.kind == "relationships" and check.field not in self.types(check.to):
            raise LookupError(f"column {check.field} not in ClickHouse table {check.to}")
        tested, value = self.client.query(counts_sql(check, types, slo_s)).result_rows[0]
        if check.kind == "freshness":
            return freshness_outcome(tested, value, dt.datetime.now(dt.timezone.utc), slo_s)
        examples: list[dict[str, Any]] = []
        if value:
            result = self.client.query(examples_sql(check, types))
            examples = example_rows(result.column_names, [tuple(map(_utc, row)) for row in result.result_rows])
        return Outcome(tested, value, examples)


def _utc(value: Any) -> Any:
    """clickhouse-connect returns the project's UTC timestamps zone-less; say so, as the lake's do."""
    return value.replace(tzinfo=dt.timezone.utc) if isinstance(value, dt.datetime) and value.tzinfo is None else value
