"""Sink health for `twitch-pipeline status`, read from the sink's own tables in ClickHouse.

Reading ClickHouse (not asking the sink process) means the answer also covers a sink that died: its
last batch time and lag stop moving, which is what an operator needs to see.
"""

from __future__ import annotations

from typing import Any

from connectors.catalog import sink_outputs
from connectors.sink.clickhouse_io import HEALTH_TABLE, STATE_TABLE
from twitch_pipeline.settings import Settings

WINDOW_S = 60


def sink_health(settings: Settings, window_s: int = WINDOW_S) -> dict[str, Any]:
    """Rows/s and batch latency over the last ``window_s``, the newest lag and freshness, committed offsets.

    Freshness is per table, from the partitions that loaded a batch within ``window_s``: an idle partition's
    last batch (a backfill an hour ago, a topic nothing writes now) says nothing about how fresh the data is.
    The headline ``freshness_s`` is the worst of the event-level tables; the minute aggregates are
    ``window_freshness_s`` because they cannot be fresher than their window plus the watermark lateness.

    Never raises: when ClickHouse cannot be asked, the answer says so (``available: False``).
    """
    from connectors.clickhouse import clickhouse_client

    try:
        with clickhouse_client(settings) as client:
            return _query(client, window_s)
    except Exception as exc:  # noqa: BLE001 - status must still print the other components
        text = str(exc).strip()
        return {"available": False, "error": text.splitlines()[0] if text else type(exc).__name__}


def _query(client, window_s: int) -> dict[str, Any]:
    rows, letters, batches, p50, p99 = client.query(
        f"SELECT sum(rows), sum(dead_letters), count(), quantile(0.5)(batch_latency_ms), quantile(0.99)(batch_latency_ms) "
        f"FROM {HEALTH_TABLE} WHERE committed_at >= now64(3) - toIntervalSecond({{window:UInt32}})",
        parameters={"window": window_s},
    ).result_rows[0]
    partitions = client.query(
        f"SELECT target_table, topic, kafka_partition, argMax(lag, committed_at), max(committed_at), "
        f"argMax(freshness_s, committed_at), dateDiff('millisecond', max(committed_at), now64(3)) / 1000 "
        f"FROM {HEALTH_TABLE} GROUP BY target_table, topic, kafka_partition "
        "ORDER BY target_table, topic, kafka_partition"
    ).result_rows
    committed = {
        (table, topic, int(partition)): int(last)
        for table, topic, partition, last in client.query(
            f"SELECT target_table, topic, kafka_partition, argMaxIf(last_offset, version, status = 'committed') "
            f"FROM {STATE_TABLE} GROUP BY target_table, topic, kafka_partition"
        ).result_rows
    }
    per_partition = [
        {
            "table": table,
            "topic": topic,
            "partition": int(partition),
            "last_committed_offset": committed.get((table, topic, int(partition))),
            "lag": int(lag),
            "last_batch_at": last_at.isoformat(),
            "freshness_s": None if fresh is None else round(fresh, 3),
        }
        for table, topic, partition, lag, last_at, fresh, _age_s in partitions
    ]
    tables = _table_freshness(partitions, window_s)
    return {
        "available": True,
        "window_s": window_s,
        "rows_per_s": round((rows or 0) / window_s, 1),
        "batches": int(batches),
        "dead_letters": int(letters or 0),
        "batch_latency_ms": {"p50": _round(p50), "p99": _round(p99)},
        "lag": sum(max(p["lag"], 0) for p in per_partition),
        "freshness_s": _worst(tables, windowed=False),
        "window_freshness_s": _worst(tables, windowed=True),
        "tables": tables,
        "partitions": per_partition,
    }


def _table_freshness(rows: list[tuple], window_s: int) -> dict[str, float]:
    """Table → the worst latest freshness of its partitions that loaded a batch within ``window_s``."""
    worst: dict[str, float] = {}
    for table, _topic, _partition, _lag, _last_at, fresh, age_s in rows:
        if fresh is not None and age_s is not None and age_s <= window_s:
            worst[table] = round(max(worst.get(table, fresh), fresh), 3)
    return worst


def _worst(tables: dict[str, float], *, windowed: bool) -> float | None:
    return max((fresh for table, fresh in tables.items() if (table in _WINDOWED_TABLES) == windowed), default=None)


#: tables of windowed aggregates (catalog: they have window columns): their freshness includes the window itself
_WINDOWED_TABLES = frozenset(o.table for o in sink_outputs() if any(c.name == "window_start" for c in o.columns))


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 1)  # quantile of nothing is NaN
