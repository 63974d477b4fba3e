"""Wire the real ends together and keep the sink running.

A failure while running (ClickHouse restarting, a broker gone) is handled like a crash: the loader is
dropped and a new one starts after a back-off, recovering through the very state-table path a
process restart takes. Configuration errors at start (a table missing or not deduplicating) stop the
sink with the message instead, since retrying cannot fix them.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from connectors.clickhouse import clickhouse_client
from connectors.sink.clickhouse_io import ClickHouseTables
from connectors.sink.kafka_io import KafkaDeadLetters, KafkaSource
from connectors.sink.loader import Loader
from connectors.sink.mapping import TableMapping, selected_mappings
from twitch_pipeline.errors import Backoff, PlatformError, StateLog
from twitch_pipeline.settings import Settings

_LOG = logging.getLogger("twitch_pipeline.sink")
MAX_BACKOFF_S = 30.0


def build_loader(settings: Settings, client, mappings: Sequence[TableMapping] | None = None) -> Loader:
    tables = ClickHouseTables(client)
    return Loader(
        source=KafkaSource(settings),
        inserter=tables,
        state=tables,
        dead_letters=KafkaDeadLetters(settings),
        health=tables,
        mappings=mappings if mappings is not None else selected_mappings(settings),
        batch_rows=settings.sink_batch_rows,
        batch_max_wait_s=settings.sink_batch_max_wait_s,
        poll_timeout_s=settings.sink_poll_timeout_s,
    )


def run_sink(settings: Settings, stop: threading.Event) -> None:
    """Load the mapped topics until ``stop`` is set."""
    mappings = selected_mappings(settings)
    if settings.sink_batch_rows < 1:
        raise PlatformError("TWITCH_PIPELINE_SINK_BATCH_ROWS must be at least 1")
    backoff = Backoff(initial_s=1.0, max_s=MAX_BACKOFF_S)
    health = StateLog(_LOG.warning, path=settings.state_file("sink"))
    while not stop.is_set():
        client = None
        try:
            client = clickhouse_client(settings)
            loader = build_loader(settings, client, mappings)
            try:
                loader.start()
            except BaseException:
                loader.source.close()
                raise
            _LOG.info("sink started: %s", ", ".join(f"{m.topic} → {m.table}" for m in mappings))
            health.ok()
            backoff.reset()
            loader.source.health = health
            loader.run(stop)
            return
        except PlatformError:
            raise
        except Exception as exc:  # noqa: BLE001 - any runtime failure: recover as a restart would
            # Logged once per outage, not per attempt: the state (and `status`) says what the sink waits for.
            health.failing(_culprit(settings, exc), f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            backoff.wait(stop)
        finally:
            if client is not None:
                client.close()


def _culprit(settings: Settings, exc: BaseException) -> str:
    """Which end failed, for the one line the sink logs and `status` shows."""
    if type(exc).__module__.split(".")[0] in ("clickhouse_connect", "urllib3", "http"):
        return f"ClickHouse at {settings.clickhouse_http_url}"
    return f"Kafka at {settings.bootstrap_servers}"
