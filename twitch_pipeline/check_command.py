"""``twitch-pipeline check``: run the declared data quality checks (connectors/quality/checks.yaml) and report."""

from __future__ import annotations

import argparse
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
    p.set_defaults(handler=run_check)


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.quality import STORES, failed, format_report, run_checks, write_results

    results = run_checks(settings, tables=args.table, stores=tuple(args.store or STORES))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        print(format_report(results))
    if not args.no_record:
        try:
            write_results(settings, results)
        except Exception as err:  # noqa: BLE001 - the report stands without its record; say why it is missing
            print(f"warning: results not recorded in ClickHouse quality_results: {str(err).strip().splitlines()[0] if str(err).strip() else err!r}",
                  file=sys.stderr)
    return 1 if failed(results) else 0
