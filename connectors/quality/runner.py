"""Run the declared checks against the stores, report them, and record them in ClickHouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Iterable, Sequence

from connectors.quality.results import ERROR, FAIL, PASS, SKIPPED, CheckResult, TableMissing
from connectors.quality.spec import STORES, Check, load_checks
from twitch_pipeline.settings import Settings

RESULTS_TABLE = "quality_results"
_RESULT_COLUMNS = ("run_at", "run_id", "check_name", "kind", "table_name", "store", "status", "rows_tested", "failures", "examples", "detail")


def run_checks(settings: Settings, tables: Iterable[str] | None = None, stores: Sequence[str] = STORES,
               checks: Sequence[Check] | None = None, day: dt.date | str | None = None) -> list[CheckResult]:
    """Run the checks of ``checks.yaml`` (only those of ``tables`` when given) in each of ``stores``.

    ``day`` (a date or ``YYYY-MM-DD``) limits every check but freshness to the rows whose event time falls on that
    UTC day: what a daily Airflow run checks. Freshness is always about now.

    Never raises for what it finds: a failing check is a result with status ``fail``, a table that does not
    exist (yet) ``skipped``, a store that cannot be reached or a check that cannot run ``error``. Results come in
    the declaration order of the checks, each check's stores side by side.
    """
    unknown = [s for s in stores if s not in STORES]
    if unknown:
        raise LookupError(f"unknown stores {unknown}; known: {', '.join(STORES)}")
    checks = list(load_checks(tables=tables) if checks is None else checks)
    if day is not None:
        day = dt.date.fromisoformat(day) if isinstance(day, str) else day
        checks = [dataclasses.replace(c, day=day) if c.kind != "freshness" and c.event_time else c for c in checks]
    run_at, run_id = dt.datetime.now(dt.timezone.utc), uuid.uuid4().hex
    found: dict[tuple[int, str], CheckResult] = {}

    def result(check: Check, store: str, status: str, tested: int = 0, failures: int = 0, examples=(), detail: str = "") -> CheckResult:
        return CheckResult(check.name, check.kind, check.table, store, status, tested, failures, list(examples), detail, run_at, run_id)

    for store_name in stores:
        relevant = [(i, c) for i, c in enumerate(checks) if store_name in c.stores]
        if not relevant:
            continue
        try:
            store = _open(settings, store_name)
        except Exception as err:  # noqa: BLE001 - an unreachable store is reported on each of its checks
            for i, check in relevant:
                found[(i, store_name)] = result(check, store_name, ERROR, detail=f"cannot open {store_name}: {_first_line(err)}")
            continue
        try:
            for table in dict.fromkeys(c.table for _, c in relevant):
                of_table = [(i, c) for i, c in relevant if c.table == table]
                skip = _prepare(store, table, [c for _, c in of_table])
                for i, check in of_table:
                    if skip is not None:
                        found[(i, store_name)] = result(check, store_name, skip[0], detail=skip[1])
                        continue
                    try:
                        outcome = store.evaluate(check, settings.quality_freshness_slo_s if check.max_age_s is None else check.max_age_s)
                    except TableMissing as missing:  # the parent of a relationship
                        found[(i, store_name)] = result(check, store_name, SKIPPED, detail=str(missing))
                    except Exception as err:  # noqa: BLE001 - one check that cannot run must not hide the others' results
                        found[(i, store_name)] = result(check, store_name, ERROR, detail=_first_line(err))
                    else:
                        status = FAIL if outcome.failures else PASS
                        found[(i, store_name)] = result(check, store_name, status, outcome.rows_tested, outcome.failures, outcome.examples, outcome.detail)
        finally:
            _close(store)
    return [found[k] for k in sorted(found, key=lambda k: (k[0], STORES.index(k[1])))]


def _open(settings: Settings, store: str):
    if store == "clickhouse":
        from connectors.clickhouse import clickhouse_client
        from connectors.quality.clickhouse_store import ClickHouseStore

        return ClickHouseStore(clickhouse_client(settings))
    from connectors.iceberg import load_catalog
    from connectors.quality.lake_store import LakeStore

    return LakeStore(load_catalog(settings), settings.iceberg_namespace)


def _prepare(store, table: str, checks: list[Check]) -> tuple[str, str] | None:
    """Let the store load what it needs for a table's checks; (status, detail) for all of them if it cannot."""
    try:
        store.prepare(table, checks)
    except TableMissing as missing:
        return SKIPPED, str(missing)
    except Exception as err:  # noqa: BLE001 - reported on each of the table's checks
        return ERROR, f"cannot read {table}: {_first_line(err)}"
    return None


def _close(store) -> None:
    client = getattr(store, "client", None)
    if client is not None:
        client.close()


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    start = text.find("Code: ")  # ClickHouse's own message, without the HTTP client's preamble
    text = text[start:] if start >= 0 else text
    return text.splitlines()[0] if text else type(err).__name__


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The results that fail a run: failures and errors (skipped checks do not)."""
    return [r for r in results if not r.ok]


def summary(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIPPED, ERROR)}
    return f"{len(results)} checks: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors, {counts[SKIPPED]} skipped"


def format_report(results: Sequence[CheckResult]) -> str:
    """A table of every result, then each failure or error with up to 5 example rows, then a summary line."""
    from twitch_pipeline.text_table import render_table

    rows = [(r.status.upper(), r.store, r.table, r.check, r.rows_tested, r.failures, r.detail if r.status != PASS or r.kind in ("freshness", "reconcile") else "")
            for r in results]
    lines = [render_table(("status", "store", "table", "check", "rows tested", "failures", "detail"), rows)] if rows else []
    for r in failed(results):
        if r.kind in ("freshness", "reconcile") or r.status == ERROR:
            what = r.detail
        elif r.kind == "unique":
            what = f"{r.failures} key values repeated among {r.rows_tested} rows"
        else:
            what = f"{r.failures} of {r.rows_tested} rows"
        lines += ["", f"{r.status.upper()} {r.store} {r.table} {r.check}: {what}"]
        if r.examples:
            columns = list(dict.fromkeys(c for e in r.examples for c in e))
            table = render_table(columns, [[e.get(c) for c in columns] for e in r.examples])
            lines += ["    " + line for line in table.splitlines()]
    lines += ["", summary(results)]
    return "\n".join(lines).lstrip("\n")


def write_results(settings: Settings, results: Sequence[CheckResult]) -> int:
    """Append the results to ClickHouse's `quality_results` (migration 040) for dashboards and Airflow; returns rows written."""
    from connectors.clickhouse import clickhouse_client

    if not results:
        return 0
    rows = [[r.run_at, r.run_id, r.check, r.kind, r.table, r.store, r.status, r.rows_tested, r.failures,
             json.dumps(r.examples, ensure_ascii=False), r.detail] for r in results]
    with clickhouse_client(settings) as client:
        client.insert(RESULTS_TABLE, rows, column_names=list(_RESULT_COLUMNS))
    return len(rows)
