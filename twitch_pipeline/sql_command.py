"""``twitch-pipeline sql "<query>"``: run one statement against the configured ClickHouse, print a table."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any, Sequence

from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings

#: Longest cell shown; longer values are cut with an ellipsis so one wide column cannot wreck the table.
MAX_CELL = 60


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
    if result.column_names:
        print(render_table(result.column_names, result.result_rows))
        print(f"({len(result.result_rows)} row{'s' if len(result.result_rows) != 1 else ''})")
    else:
        written = result.summary.get("written_rows", "0") if isinstance(result.summary, dict) else "0"
        print(f"ok ({written} rows written)" if written not in ("", "0") else "ok")
    return 0


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table: numbers right-aligned, NULL for None, long cells cut."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
               for i in range(len(columns))]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])


def _cell(value: Any) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, (dt.datetime, dt.date)):
        text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    elif isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    else:
        text = str(value)
    text = text.replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _server_message(err: Exception) -> str:
    """ClickHouse's own ``Code: N. DB::Exception: …`` line when there is one, else the error's first line."""
    text = str(err)
    start = text.find("Code: ")
    text = text[start:] if start >= 0 else text
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
