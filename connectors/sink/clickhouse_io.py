"""The ClickHouse end of the sink: columnar inserts with deduplication tokens, and the state and health tables.

Works the same against the embedded chDB server and an external ClickHouse: everything goes through
:func:`connectors.clickhouse.clickhouse_client` over HTTP, with plain SQL both understand.
"""

from __future__ import annotations

import re
from typing import Sequence

from connectors.sink.ports import BatchReport, RangeState
from connectors.sink.rows import Column
from twitch_pipeline.errors import PlatformError

STATE_TABLE = "sink_offsets"
HEALTH_TABLE = "sink_batches"
_WINDOW = re.compile(r"\b(non_replicated_deduplication_window|replicated_deduplication_window)\s*=\s*(\d+)")
_STATE_COLUMNS = ["target_table", "topic", "kafka_partition", "first_offset", "last_offset", "status", "version"]
_HEALTH_COLUMNS = [
    "committed_at", "target_table", "topic", "kafka_partition", "first_offset", "last_offset", "rows", "dead_letters",
    "batch_latency_ms", "insert_ms", "lag", "max_event_time", "freshness_s", "kafka_delay_ms",
]
# Bookkeeping rows must never be mistaken for a retried insert (a replicated table would drop them).
_NO_DEDUP = {"insert_deduplicate": 0}


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class ClickHouseTables:
    """Inserter, state store and health log over one clickhouse-connect client."""

    def __init__(self, client):
        self.client = client

    # -- Inserter ---------------------------------------------------------------------------------
    def columns(self, table: str) -> list[Column]:
        """The columns an insert must fill, in table order (DEFAULT/MATERIALIZED/ALIAS ones fill themselves)."""
        result = self.client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {table:String} "
            "AND default_kind = '' ORDER BY position",
            parameters={"table": table},
        )
        return [Column(name, type_) for name, type_ in result.result_rows]

    def check_deduplication(self, table: str) -> None:
        found = self.client.query(
            "SELECT engine, create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {table:String}",
            parameters={"table": table},
        ).result_rows
        if not found:
            raise PlatformError(f"ClickHouse table {table} does not exist: `twitch-pipeline up` applies the migrations that create it")
        engine, ddl = found[0]
        windows = dict(_WINDOW.findall(ddl))
        replicated = engine.startswith("Replicated") or engine.startswith("Shared")
        name = "replicated_deduplication_window" if replicated else "non_replicated_deduplication_window"
        window = windows.get(name) or self._server_default(name)
        if int(window) <= 0:
            raise PlatformError(
                f"ClickHouse table {table} ({engine}) does not deduplicate retried inserts ({name} = {window}); "
                f"the sink needs it for exactly-once: ALTER TABLE {table} MODIFY SETTING {name} = 1000"
            )

    def _server_default(self, name: str) -> str:
        rows = self.client.query("SELECT value FROM system.merge_tree_settings WHERE name = {name:String}", parameters={"name": name}).result_rows
        return rows[0][0] if rows else "0"

    def insert(self, table: str, names: Sequence[str], types: Sequence[str], columns: Sequence[Sequence], token: str) -> None:
        self.client.insert(
            table,
            columns,
            column_names=list(names),
            column_type_names=list(types),
            column_oriented=True,
            settings={"insert_deduplicate": 1, "insert_deduplication_token": token, "async_insert": 0},
        )

    # -- StateStore -------------------------------------------------------------------------------
    def load(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], RangeState]:
        if not keys:
            return {}
        tables = sorted({k[0] for k in keys})
        result = self.client.query(
            f"SELECT target_table, topic, kafka_partition, argMax(first_offset, version), argMax(last_offset, version), "
            f"toString(argMax(status, version)) FROM {STATE_TABLE} WHERE target_table IN {{tables:Array(String)}} "
            "GROUP BY target_table, topic, kafka_partition",
            parameters={"tables": tables},
        )
        wanted = set(keys)
        out = {}
        for table, topic, partition, first, last, status in result.result_rows:
            key = (table, topic, int(partition))
            if key in wanted:
                out[key] = RangeState(table, topic, int(partition), int(first), int(last), status)
        return out

    def save(self, states: Sequence[RangeState]) -> None:
        rows = [[s.table, s.topic, s.partition, s.first_offset, s.last_offset, s.status, s.version] for s in states]
        self.client.insert(STATE_TABLE, rows, column_names=_STATE_COLUMNS, settings=_NO_DEDUP)

    # -- HealthLog --------------------------------------------------------------------------------
    def write(self, reports: Sequence[BatchReport]) -> None:
        rows = [
            [
                _ms(r.committed_at), r.table, r.topic, r.partition, r.first_offset, r.last_offset, r.rows, r.dead_letters,
                r.batch_latency_ms, r.insert_ms, r.lag, _ms(r.max_event_time), r.freshness_s, r.kafka_delay_ms,
            ]
            for r in reports
        ]
        self.client.insert(HEALTH_TABLE, rows, column_names=_HEALTH_COLUMNS, settings=_NO_DEDUP)
