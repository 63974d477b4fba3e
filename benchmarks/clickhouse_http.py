"""Cost of the embedded ClickHouse's HTTP interface: the same work through HTTP and in-process chDB.

* insert 1M rows: identical pre-encoded Native bytes, through HTTP (clickhouse-connect ``raw_insert``,
  lz4 as it sends by default) vs chDB's in-process streaming insert — the interface's own cost;
  plus clickhouse-connect's ``insert`` from Python columns, which is what project code pays end to end;
* GROUP BY over the 1M rows (small result): HTTP ``query`` vs in-process ``query``;
* SELECT * of the 1M rows as Native bytes: HTTP ``raw_query`` vs in-process — the cost of moving a
  large result.

Rows/s of each, and HTTP/in-process ratios. Both sides share the machine's cores.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

ROWS = 1_000_000
CHUNK = 1 << 20
REPEATS = 5
TABLE = "CREATE TABLE {name} (id UInt64, game LowCardinality(String), viewers UInt32, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id"
SOURCE = f"SELECT number AS id, concat('game', toString(number % 50)) AS game, toUInt32(number % 10000) AS viewers, toDateTime64('2024-01-01 00:00:00', 3, 'UTC') + number AS at FROM numbers({ROWS})"
GROUP_BY = "SELECT game, count(), sum(viewers), max(at) FROM {name} GROUP BY game ORDER BY game"


def _timed(fn: Callable[[int], object], run: int) -> float:
    began = time.perf_counter()
    fn(run)
    return time.perf_counter() - began


def _paired(local: Callable[[int], object], http: Callable[[int], object]) -> tuple[float, float]:
    """Median seconds of each over REPEATS alternating runs (each gets its run number, e.g. for a fresh
    table name). Alternating and taking the median keeps load from other work on the shared machine
    from landing on one side only."""
    runs = [(_timed(local, i), _timed(http, i)) for i in range(REPEATS)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _measure(native: bytes, local, client) -> dict[str, tuple[float, float]]:
    """(in-process seconds, HTTP seconds) per operation."""

    def local_insert(i: int) -> None:
        local.query(TABLE.format(name=f"t{i}"))
        with local.send_insert(f"INSERT INTO t{i}", "Native") as ins:
            for start in range(0, len(native), CHUNK):  # streamed in the chunks the server reads
                ins.append(native[start : start + CHUNK])
            ins.finish()

    def http_insert(i: int) -> None:
        client.command(TABLE.format(name=f"t{i}"))
        client.raw_insert(f"t{i}", None, native, fmt="Native")

    columns = client.query(f"SELECT * FROM ({SOURCE})").result_columns

    def client_insert(i: int) -> None:
        client.command(TABLE.format(name=f"c{i}"))
        client.insert(f"c{i}", columns, column_names=["id", "game", "viewers", "at"], column_oriented=True)

    timings = {
        "insert": _paired(local_insert, http_insert),
        "group_by": _paired(lambda i: local.query(GROUP_BY.format(name="t0"), "Native"), lambda i: client.query(GROUP_BY.format(name="t0"))),
        "select_all": _paired(lambda i: local.query("SELECT * FROM t0", "Native").bytes(), lambda i: client.raw_query("SELECT * FROM t0", fmt="Native")),
        "client_insert": (0.0, statistics.median(_timed(client_insert, i) for i in range(REPEATS))),
    }
    assert client.command("SELECT count() FROM t0") == ROWS and client.command("SELECT count() FROM c0") == ROWS
    return timings


def main() -> dict:
    import chdb
    from chdb.state.sqlitelike import Connection

    from connectors.clickhouse import clickhouse_client
    from twitch_pipeline.platform.clickhouse import ClickHouse
    from twitch_pipeline.platform.process import free_port
    from twitch_pipeline.settings import load_settings

    native = chdb.query(SOURCE, "Native").bytes()
    with tempfile.TemporaryDirectory(prefix="bench-clickhouse-") as tmp:
        workdir = Path(tmp)
        settings = dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=workdir / "run", clickhouse_port=free_port())
        server = ClickHouse(settings)
        server.start()
        local = Connection(str(workdir / "in_process"))
        try:
            server.wait_healthy()
            with clickhouse_client(settings, database="default") as client:
                timings = _measure(native, local, client)
        finally:
            local.close()
            server.stop()

    def rate(seconds: float) -> int:
        return round(ROWS / seconds)

    return {
        "rows": ROWS,
        "native_bytes": len(native),
        "insert_rows_per_s": {
            "in_process": rate(timings["insert"][0]),
            "http_raw_native": rate(timings["insert"][1]),
            "http_clickhouse_connect_insert": rate(timings["client_insert"][1]),
        },
        "group_by_rows_per_s": {"in_process": rate(timings["group_by"][0]), "http": rate(timings["group_by"][1])},
        "select_all_rows_per_s": {"in_process": rate(timings["select_all"][0]), "http": rate(timings["select_all"][1])},
        "http_over_in_process_time": {op: round(timings[op][1] / timings[op][0], 2) for op in ("insert", "group_by", "select_all")},
        "median_seconds_in_process_http": timings,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
