"""Row counts of one output for one event-time day, in Kafka, ClickHouse and Iceberg: exactly-once means equal.

The day is the UTC day of the output's event-time column (``Output.event_time`` in the catalog), the same
definition in all three stores. ClickHouse is counted without FINAL (a duplicate row is a defect, not
something to hide). Kafka is read as a downstream consumer reads it (read_committed), heartbeats skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from connectors import catalog
from connectors.quality.results import FAIL, PASS, CheckResult, TableMissing
from twitch_pipeline.settings import Settings

DAY = dt.timedelta(days=1)


def reconcile_counts(settings: Settings, output: str, day: dt.date | str, lookback_s: float = 86400.0, timeout_s: float = 600.0) -> dict[str, Any]:
    """``{"output", "day", "event_time", "kafka", "kafka_complete", "clickhouse", "iceberg", "match", "detail"}``.

    A store the output is not kept in, or whose table does not exist, counts ``None`` and is left out of
    ``match``; so is Kafka when retention has already deleted part of the day (``kafka_complete`` false).
    Kafka is read from the first record written ``lookback_s`` before the day began: a record is written after
    its event happened, so earlier records cannot belong to the day (raise it for sources that produce events
    ahead of their time).
    """
    out = catalog.output(output)
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    details: list[str] = []
    # a lake-only output (chat_bronze) has no topic of its own to count
    kafka, complete = kafka_count(settings, out, start, lookback_s, timeout_s) if out.topic is not None else (None, True)
    if not complete:
        details.append("kafka retention has deleted records that may belong to the day")
    counts = {
        "clickhouse": _guarded(details, "clickhouse", lambda: clickhouse_count(settings, out, start)) if out.clickhouse else None,
        "iceberg": _guarded(details, "iceberg", lambda: iceberg_count(settings, out, start)) if out.iceberg else None,
    }
    compared = [n for n in (kafka if complete else None, *counts.values()) if n is not None]
    return {
        "output": output, "day": day.isoformat(), "event_time": out.event_time, "kafka": kafka, "kafka_complete": complete,
        **counts, "match": len(set(compared)) <= 1, "detail": "; ".join(details),
    }


def reconciliation_result(counts: dict[str, Any], run_at: dt.datetime | None = None, run_id: str = "") -> CheckResult:
    """A :func:`reconcile_counts` answer as a check result (store ``kafka+clickhouse+iceberg``), so the counts are
    reported and recorded in `quality_results` like the declared checks: failures are the largest difference."""
    stores = [s for s in ("kafka", "clickhouse", "iceberg") if counts[s] is not None and (s != "kafka" or counts["kafka_complete"])]
    numbers = [counts[s] for s in stores]
    spread = max(numbers) - min(numbers) if numbers else 0
    shown = ", ".join(f"{s} {counts[s]}" for s in ("kafka", "clickhouse", "iceberg") if counts[s] is not None)
    return CheckResult(
        check=f"reconcile({counts['event_time']} on {counts['day']})", kind="reconcile", table=counts["output"], store="+".join(stores),
        status=PASS if counts["match"] else FAIL, rows_tested=max(numbers, default=0), failures=spread,
        examples=[] if counts["match"] else [{s: counts[s] for s in ("kafka", "clickhouse", "iceberg")}],
        detail="; ".join(d for d in (shown, counts["detail"]) if d), run_at=run_at or dt.datetime.now(dt.timezone.utc), run_id=run_id,
    )


def _guarded(details: list[str], store: str, count) -> int | None:
    try:
        return count()
    except TableMissing as missing:
        details.append(f"{store}: {missing}")
        return None


def clickhouse_count(settings: Settings, out: catalog.Output, start: dt.datetime) -> int:
    from connectors.clickhouse import clickhouse_client
    from connectors.quality.clickhouse_store import ClickHouseStore, ident

    with clickhouse_client(settings) as client:
        ClickHouseStore(client).types(out.table)  # TableMissing when it is not there
        col = ident(out.event_time)
        return client.query(
            f"SELECT count() FROM {ident(out.table)} WHERE {col} >= toDateTime64({{start:String}}, 3, 'UTC') "
            f"AND {col} < toDateTime64({{end:String}}, 3, 'UTC')",
            parameters={"start": _sql_time(start), "end": _sql_time(start + DAY)},
        ).result_rows[0][0]


def iceberg_count(settings: Settings, out: catalog.Output, start: dt.datetime) -> int:
    from connectors.iceberg import load_catalog
    from connectors.quality.lake_store import LakeStore

    lake = LakeStore(load_catalog(settings), settings.iceberg_namespace)
    row_filter = lake.between(out.table, out.event_time, start, start + DAY)
    return lake.table(out.table).scan(row_filter=row_filter, selected_fields=(out.event_time,)).to_arrow().num_rows


def kafka_count(settings: Settings, out: catalog.Output, start: dt.datetime, lookback_s: float, timeout_s: float) -> tuple[int, bool]:
    """Committed records of the output's topic whose event time falls on the day; and whether Kafka still has
    all of them (retention has not deleted the start of the range)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from connectors.kafka import client_config, topic_partitions
    from connectors.topics import is_heartbeat_key

    consumer = Consumer(client_config(settings, **{
        "group.id": f"quality-reconcile-{uuid.uuid4().hex}", "isolation.level": "read_committed",
        "enable.partition.eof": True, "enable.auto.commit": False, "auto.offset.reset": "earliest",
    }))
    try:
        partitions = topic_partitions(consumer.list_topics(out.topic.name, timeout=10), out.topic.name)
        since_ms = int((start.timestamp() - lookback_s) * 1000)
        firsts = consumer.offsets_for_times([TopicPartition(out.topic.name, p, since_ms) for p in partitions], timeout=10)
        complete, assigned, ends = True, [], {}
        for tp in firsts:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10, cached=False)
            first = high if tp.offset < 0 else tp.offset  # no record at or after the time: nothing to read
            if low > 0 and first == low:
                complete = False
            if first < high:
                assigned.append(TopicPartition(tp.topic, tp.partition, first))
                ends[tp.partition] = high
        consumer.assign(assigned)
        day, field, count = start.date().isoformat(), out.event_time, 0
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"counting {out.topic.name} did not reach the end of partitions {sorted(ends)} within {timeout_s:g}s")
            for msg in consumer.consume(10000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {out.topic.name}: {err}")
                    ends.pop(msg.partition(), None)
                    continue
                if msg.offset() >= ends.get(msg.partition(), 0) - 1:
                    ends.pop(msg.partition(), None)
                if not is_heartbeat_key(msg.key()) and _event_day(msg.value(), field) == day:
                    count += 1
        return count, complete
    finally:
        consumer.close()


def _event_day(value: bytes | None, field: str) -> str | None:
    """The UTC day of the record's event time; None when the record has none (it cannot belong to a day)."""
    try:
        stamp = json.loads(value).get(field) if value else None
    except (ValueError, AttributeError):
        return None
    if not isinstance(stamp, str):
        return None
    if stamp.endswith("Z"):  # what Flink writes: ISO-8601 in UTC
        return stamp[:10]
    try:
        parsed = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (parsed.astimezone(dt.timezone.utc) if parsed.tzinfo else parsed).date().isoformat()


def _sql_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")
