"""``twitch-pipeline check``: run the declared data quality checks (connectors/quality/checks.yaml) and report;
with ``--reconcile DAY``, compare one day's row counts in Kafka, ClickHouse and Iceberg instead."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from twitch_pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    help_text = "run the data quality checks against ClickHouse and the Iceberg lake; exit 1 on a failure"
    p = subparsers.add_parser("check", help=help_text, description=help_text + " (checks: connectors/quality/checks.yaml)")
    p.add_argument("--table", action="append", metavar="T", help="only this table's checks (repeatable; default: every table)")
    p.add_argument("--store", choices=("clickhouse", "iceberg"), action="append", help="only this store (repeatable; default: both)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a report")
    p.add_argument("--no-record", action="store_true", help="do not append the results to ClickHouse's quality_results")
    p.add_argument("--day", type=_day, help="check only the rows whose event time falls on DAY (YYYY-MM-DD, UTC); freshness is always about now")
    p.add_argument("--reconcile", metavar="DAY", type=_day,
                   help="instead of the checks: row counts of each output (or --table) with event time on DAY (YYYY-MM-DD, UTC) "
                        "in Kafka, ClickHouse and Iceberg; exit 1 when they differ")
    p.set_defaults(handler=run_check)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.quality import STORES, QualityConfigError, format_report, run_checks

    if args.reconcile:
        results = _reconcile(settings, args)
    else:
        try:
            results = run_checks(settings, tables=args.table, stores=tuple(args.store or STORES), day=args.day)
        except QualityConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        print(format_report(results))
    return _record(settings, args, results)


def _reconcile(settings: Settings, args: argparse.Namespace) -> list:
    from connectors import catalog
    from connectors.quality import reconcile_counts, reconciliation_result

    return [reconciliation_result(reconcile_counts(settings, name, args.reconcile)) for name in args.table or [o.name for o in catalog.OUTPUTS]]


def _record(settings: Settings, args: argparse.Namespace, results: list) -> int:
    """Append the results to quality_results (unless --no-record); exit 1 when any failed."""
    from connectors.quality import failed, write_results

    if not args.no_record:
        try:
            write_results(settings, results)
        except Exception as err:  # noqa: BLE001 - the report stands without its record; say why it is missing
            print(f"warning: results not recorded in ClickHouse quality_results: {str(err).strip().splitlines()[0] if str(err).strip() else err!r}",
                  file=sys.stderr)
    return 1 if failed(results) else 0
