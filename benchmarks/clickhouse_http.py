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


def _best(fn: Callable[[int], object]) -> float:
    """Median seconds of REPEATS runs (each gets its run number, e.g. for a fresh table name); the
    median because the machine is shared and single runs are noisy."""
    times = []
    for i in range(REPEATS):
        began = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _in_process(native: bytes, workdir: Path) -> dict[str, float]:
    from chdb.state.sqlitelike import Connection

    conn = Connection(str(workdir / "inproc"))
    try:
        def insert(i: int) -> None:
            conn.query(TABLE.format(name=f"t{i}"))
            with conn.send_insert(f"INSERT INTO t{i}", "Native") as ins:
                for start in range(0, len(native), CHUNK):  # streamed in the chunks the server reads
                    ins.append(native[start : start + CHUNK])
                ins.finish()

        return {
            "insert_s": _best(insert),
            "group_by_s": _best(lambda i: conn.query(GROUP_BY.format(name="t0"), "Native")),
            "select_all_s": _best(lambda i: conn.query("SELECT * FROM t0", "Native").bytes()),
        }
    finally:
        conn.close()


def _over_http(native: bytes, settings) -> dict[str, float]:
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings, database="default") as client:
        def raw_insert(i: int) -> None:
            client.command(TABLE.format(name=f"r{i}"))
            client.raw_insert(f"r{i}", None, native, fmt="Native")

        columns = client.query(f"SELECT * FROM ({SOURCE})").result_columns

        def insert(i: int) -> None:
            client.command(TABLE.format(name=f"c{i}"))
            client.insert(f"c{i}", columns, column_names=["id", "game", "viewers", "at"], column_oriented=True)

        result = {
            "raw_insert_s": _best(raw_insert),
            "client_insert_s": _best(insert),
            "group_by_s": _best(lambda i: client.query(GROUP_BY.format(name="r0"))),
            "select_all_s": _best(lambda i: client.raw_query("SELECT * FROM r0", fmt="Native")),
        }
        assert client.command("SELECT count() FROM c0") == ROWS and client.command("SELECT count() FROM r0") == ROWS
        return result


def main() -> dict:
    import chdb

    from twitch_pipeline.platform.clickhouse import ClickHouse
    from twitch_pipeline.platform.process import free_port
    from twitch_pipeline.settings import load_settings

    native = chdb.query(SOURCE, "Native").bytes()
    with tempfile.TemporaryDirectory(prefix="bench-clickhouse-") as tmp:
        workdir = Path(tmp)
        settings = dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=workdir / "run", clickhouse_port=free_port())
        server = ClickHouse(settings)
        server.start()
        try:
            server.wait_healthy()
            http = _over_http(native, settings)
        finally:
            server.stop()
        local = _in_process(native, workdir)

    def rate(seconds: float) -> int:
        return round(ROWS / seconds)

    return {
        "rows": ROWS,
        "native_bytes": len(native),
        "insert_rows_per_s": {
            "in_process": rate(local["insert_s"]),
            "http_raw_native": rate(http["raw_insert_s"]),
            "http_clickhouse_connect_insert": rate(http["client_insert_s"]),
        },
        "group_by_rows_per_s": {"in_process": rate(local["group_by_s"]), "http": rate(http["group_by_s"])},
        "select_all_rows_per_s": {"in_process": rate(local["select_all_s"]), "http": rate(http["select_all_s"])},
        "http_over_in_process_time": {
            "insert": round(http["raw_insert_s"] / local["insert_s"], 2),
            "group_by": round(http["group_by_s"] / local["group_by_s"], 2),
            "select_all": round(http["select_all_s"] / local["select_all_s"], 2),
        },
        "seconds": {"in_process": local, "http": http},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
