"""The declared checks: ``checks.yaml`` parsed into :class:`Check` objects, completed from the pipeline catalog.

A table's key (for ``unique`` and for the example rows), its event-time column (for ``freshness`` and
``recent_s``) and its stores come from ``connectors/catalog.py`` when the table is one of the pipeline's
outputs; the YAML declares them only for tables the catalog does not list (yet). A mistake in the YAML is a
:class:`QualityConfigError` naming the table, the column and the test, never a silently dropped check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from connectors import catalog

CHECKS_FILE = Path(__file__).resolve().parent / "checks.yaml"
STORES = ("clickhouse", "iceberg")
COLUMN_TESTS = ("not_null", "not_empty_string", "unique", "accepted_values", "accepted_range", "relationships")
TABLE_TESTS = ("unique", "freshness")
#: Arguments each test takes (besides ``recent_s``, which every test takes).
_ARGS: dict[str, tuple[str, ...]] = {
    "not_null": (),
    "not_empty_string": (),
    "unique": ("columns",),
    "accepted_values": ("values",),
    "accepted_range": ("min_value", "max_value", "inclusive"),
    "relationships": ("to", "field"),
    "freshness": ("column", "max_age_s"),
}


class QualityConfigError(ValueError):
    """``checks.yaml`` (or a table's catalog entry) does not describe a runnable check; the message says where."""


@dataclass(frozen=True)
class Check:
    """One test of one table, runnable against any store the table lives in."""

    kind: str
    table: str
    columns: tuple[str, ...]  # the tested columns: one, or the key of `unique`, or the event-time column of `freshness`
    stores: tuple[str, ...]
    key: tuple[str, ...] = ()  # the table's row key: shown in example rows
    event_time: str | None = None  # the table's event-time column
    values: tuple[Any, ...] = ()  # accepted_values
    min_value: float | None = None  # accepted_range
    max_value: float | None = None
    inclusive: bool = True
    to: str | None = None  # relationships: parent table and column
    field: str | None = None
    max_age_s: float | None = None  # freshness; None means the `quality_freshness_slo_s` setting
    recent_s: float | None = None  # test only rows whose event time is within the last N seconds
    day: dt.date | None = None  # test only rows whose event time falls on this UTC day (a run's scope, not declared)

    @property
    def day_range(self) -> tuple[dt.datetime, dt.datetime] | None:
        """[start, end) of ``day`` in UTC."""
        if self.day is None:
            return None
        start = dt.datetime.combine(self.day, dt.time(), dt.timezone.utc)
        return start, start + dt.timedelta(days=1)

    @property
    def column(self) -> str:
        return self.columns[0]

    @property
    def name(self) -> str:
        """Stable and readable: it names the check in reports and in the `quality_results` table."""
        cols = ", ".join(self.columns)
        if self.kind == "accepted_range":
            low, high = ("[", "]") if self.inclusive else ("(", ")")
            if self.min_value is not None and self.max_value is not None:
                detail = f"{cols} in {low}{self.min_value:g}, {self.max_value:g}{high}"
            elif self.min_value is not None:
                detail = f"{cols} {'>=' if self.inclusive else '>'} {self.min_value:g}"
            else:
                detail = f"{cols} {'<=' if self.inclusive else '<'} {self.max_value:g}"
        elif self.kind == "accepted_values":
            detail = f"{cols} in {{{', '.join(str(v) for v in self.values)}}}"
        elif self.kind == "relationships":
            detail = f"{cols} -> {self.to}{'' if self.field == self.column else '.' + self.field}"
        else:
            detail = cols
        return f"{self.kind}({detail}{f', last {_duration(self.recent_s)}' if self.recent_s else ''})"

    @property
    def example_columns(self) -> tuple[str, ...]:
        """What an example failing row shows: the row's key, then the tested columns."""
        return tuple(dict.fromkeys((*self.key, *self.columns)))


def load_checks(path: Path = CHECKS_FILE, tables: Iterable[str] | None = None) -> list[Check]:
    """Every check of ``path`` (or only those of ``tables``), in file order."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise QualityConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_checks(document, tables, source=path.name)


def parse_checks(document: Any, tables: Iterable[str] | None = None, source: str = "checks.yaml") -> list[Check]:
    if not isinstance(document, dict) or not isinstance(document.get("tables"), list):
        raise QualityConfigError(f"{source}: expected a mapping with a `tables` list")
    unknown = set(document) - {"tables"}
    if unknown:
        raise QualityConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    declared = [_table_checks(entry, source) for entry in document["tables"]]
    names = [name for name, _ in declared]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise QualityConfigError(f"{source}: tables declared twice: {', '.join(duplicates)}")
    for name, checks in declared:
        seen = [c.name for c in checks]
        repeated = sorted({n for n in seen if seen.count(n) > 1})
        if repeated:
            raise QualityConfigError(f"{source}: table {name}: checks declared twice: {', '.join(repeated)}")
    if tables is None:
        return [c for _, checks in declared for c in checks]
    wanted = list(dict.fromkeys(tables))
    missing = [t for t in wanted if t not in names]
    if missing:
        raise LookupError(f"no checks declared for {', '.join(missing)} in {source}; tables with checks: {', '.join(names)}")
    return [c for name, checks in declared if name in wanted for c in checks]


def _table_checks(entry: Any, source: str) -> tuple[str, list[Check]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise QualityConfigError(f"{source}: every entry of `tables` needs a `name`: {entry!r}")
    table = entry["name"]
    where = f"{source}: table {table}"
    unknown = set(entry) - {"name", "key", "event_time", "stores", "tests", "columns"}
    if unknown:
        raise QualityConfigError(f"{where}: unknown keys {sorted(unknown)}")
    output = _catalog_output(table)
    key = _from_catalog_or_yaml(where, "key", output.partition_key if output else None, _names(entry.get("key"), f"{where}: key"))
    event_time = _from_catalog_or_yaml(where, "event_time", output.event_time if output else None, entry.get("event_time"))
    stores = _stores(where, entry.get("stores"), output)
    base = {"table": table, "stores": stores, "key": key or (), "event_time": event_time}

    checks = [_check(where, test, None, base) for test in _list(entry.get("tests"), f"{where}: tests")]
    for column in _list(entry.get("columns"), f"{where}: columns"):
        if not isinstance(column, dict) or not isinstance(column.get("name"), str) or set(column) - {"name", "tests"}:
            raise QualityConfigError(f"{where}: a column entry is `{{name: c, tests: [...]}}`, got {column!r}")
        for test in _list(column.get("tests"), f"{where}, column {column['name']}: tests"):
            checks.append(_check(f"{where}, column {column['name']}", test, column["name"], base))
    return table, checks


def _check(where: str, test: Any, column: str | None, base: dict[str, Any]) -> Check:
    """One test entry: a bare name (`not_null`) or a one-key mapping (`accepted_range: {min_value: 0}`)."""
    if isinstance(test, str):
        kind, args = test, {}
    elif isinstance(test, dict) and len(test) == 1:
        kind, args = next(iter(test.items()))
        args = {} if args is None else args
    else:
        raise QualityConfigError(f"{where}: a test is a name or a one-key mapping, got {test!r}")
    allowed = COLUMN_TESTS if column else TABLE_TESTS
    if kind not in allowed:
        raise QualityConfigError(f"{where}: unknown {'column' if column else 'table'} test {kind!r}; known: {', '.join(allowed)}")
    where = f"{where}: {kind}"
    if not isinstance(args, dict):
        raise QualityConfigError(f"{where}: arguments must be a mapping, got {args!r}")
    unknown = set(args) - {*_ARGS[kind], "recent_s"}
    if unknown:
        raise QualityConfigError(f"{where}: unknown arguments {sorted(unknown)}; it takes {', '.join((*_ARGS[kind], 'recent_s'))}")
    recent_s = _number(args.get("recent_s"), f"{where}: recent_s")
    if recent_s is not None and not base["event_time"]:
        raise QualityConfigError(f"{where}: recent_s needs the table's event_time (declare it for tables outside the catalog)")
    spec: dict[str, Any] = {**base, "kind": kind, "recent_s": recent_s}

    if kind == "unique":
        columns = _names(args.get("columns"), f"{where}: columns") or ((column,) if column else base["key"])
        if not columns:
            raise QualityConfigError(f"{where}: no columns and the table has no key (catalog partition_key or `key:`)")
        return Check(**spec, columns=columns)
    if kind == "freshness":
        ts = args.get("column") or base["event_time"]
        if not ts:
            raise QualityConfigError(f"{where}: no column and the table has no event_time (catalog or `event_time:`)")
        return Check(**spec, columns=(ts,), max_age_s=_number(args.get("max_age_s"), f"{where}: max_age_s"))
    spec["columns"] = (column,)
    if kind == "accepted_values":
        values = args.get("values")
        if not isinstance(values, list) or not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            raise QualityConfigError(f"{where}: `values` must be a non-empty list of scalars")
        return Check(**spec, values=tuple(values))
    if kind == "accepted_range":
        low, high = _number(args.get("min_value"), f"{where}: min_value"), _number(args.get("max_value"), f"{where}: max_value")
        if low is None and high is None:
            raise QualityConfigError(f"{where}: needs min_value, max_value or both")
        if low is not None and high is not None and low > high:
            raise QualityConfigError(f"{where}: min_value {low} is above max_value {high}")
        inclusive = args.get("inclusive", True)
        if not isinstance(inclusive, bool):
            raise QualityConfigError(f"{where}: inclusive must be true or false")
        return Check(**spec, min_value=low, max_value=high, inclusive=inclusive)
    if kind == "relationships":
        if not isinstance(args.get("to"), str) or not isinstance(args.get("field"), str):
            raise QualityConfigError(f"{where}: needs `to` (parent table) and `field` (its column)")
        return Check(**spec, to=args["to"], field=args["field"])
    return Check(**spec)  # not_null, not_empty_string


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:g}s"


def _catalog_output(table: str) -> catalog.Output | None:
    try:
        return catalog.output(table)
    except KeyError:
        return None


def _from_catalog_or_yaml(where: str, what: str, from_catalog: Any, from_yaml: Any) -> Any:
    """The catalog is the one declaration of a pipeline output; the YAML may repeat it, never contradict it."""
    if from_yaml is not None and not isinstance(from_yaml, (str, tuple)):
        raise QualityConfigError(f"{where}: {what} must be a column name, got {from_yaml!r}")
    if from_catalog and from_yaml and from_catalog != from_yaml:
        raise QualityConfigError(f"{where}: {what} {from_yaml!r} contradicts connectors/catalog.py ({from_catalog!r}); drop it from the YAML")
    return from_catalog or from_yaml or None


def _stores(where: str, declared: Any, output: catalog.Output | None) -> tuple[str, ...]:
    if declared is not None:
        stores = _names(declared, f"{where}: stores")
        bad = [s for s in stores if s not in STORES]
        if bad:
            raise QualityConfigError(f"{where}: unknown stores {bad}; known: {', '.join(STORES)}")
        return stores
    if output is not None:
        return tuple(s for s, kept in (("clickhouse", output.clickhouse), ("iceberg", output.iceberg)) if kept)
    return STORES  # not in the catalog: look in both, a store without the table reports it skipped


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise QualityConfigError(f"{where}: expected a column name or a list of names, got {value!r}")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise QualityConfigError(f"{where}: expected a list, got {value!r}")
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QualityConfigError(f"{where}: expected a number, got {value!r}")
    return value
