"""``twitch-pipeline sql "<query>"``: run one statement against the configured ClickHouse, print a table."""

from __future__ import annotations

import argparse
import re
import sys

from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings
from twitch_pipeline.text_table import render_table

#: Longest cell shown; longer values are cut with an ellipsis so one wide column cannot wreck the table.
#: Statements that return rows (their result prints as a table even when empty).
READS = re.compile(r"\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


def register(subparsers: argparse._SubParsersAction) -> None:
    help_text = "run a SQL statement against the configured ClickHouse and print the result as a table"
    p = subparsers.add_parser("sql", help=help_text, description=help_text)
    p.add_argument("query", help="one SQL statement (quote it for the shell)")
    p.add_argument("--database", help="database to run in (default: TWITCH_PIPELINE_CLICKHOUSE_DATABASE)")
    p.add_argument("--format", dest="output_format", metavar="FMT",
                   help="print ClickHouse's own output in this format (e.g. JSONEachRow, CSVWithNames) instead of a table")
    p.set_defaults(handler=run_sql)


def run_sql(settings: Settings, args: argparse.Namespace) -> int:
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

    from connectors.clickhouse import clickhouse_client, endpoint

    try:
        with clickhouse_client(settings, database=args.database) as client:
            if args.output_format:
                sys.stdout.write(client.raw_query(args.query, fmt=args.output_format).decode("utf-8", errors="replace"))
                return 0
            result = client.query(args.query)
    except ClickHouseError as err:
        if isinstance(err, OperationalError) and "Code: " not in str(err):
            raise PlatformError(f"cannot reach ClickHouse at {endpoint(settings).dsn()}: is the platform up? (`twitch-pipeline up`)") from None
        raise PlatformError(_server_message(err)) from None
    columns = result.column_names
    if not columns and READS.match(args.query):
        # An empty result carries no header over HTTP; ask for the query's columns, so it prints as a table.
        with clickhouse_client(settings, database=args.database) as client:
            columns = [row[0] for row in client.query(f"DESCRIBE ({args.query.strip().rstrip(';')})").result_rows]
    if columns:
        print(render_table(columns, result.result_rows))
        print(f"({len(result.result_rows)} row{'s' if len(result.result_rows) != 1 else ''})")
    else:
        written = result.summary.get("written_rows", "0") if isinstance(result.summary, dict) else "0"
        print(f"ok ({written} rows written)" if written not in ("", "0") else "ok")
    return 0


def _server_message(err: Exception) -> str:
    """ClickHouse's own ``Code: N. DB::Exception: …`` line when there is one, else the error's first line."""
    text = str(err)
    start = text.find("Code: ")
    text = text[start:] if start >= 0 else text
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
