"""`twitch-pipeline run` (what `make run` calls): the whole pipeline in the foreground.

Starts the platform, the streaming jobs, the ClickHouse sink and the producer (synthetic unless
Twitch credentials are set), then prints one refreshing status line until Ctrl-C, which stops
everything in reverse order: producer, sink and jobs (with savepoints), then the platform.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from twitch_pipeline import registry
from twitch_pipeline.jobs import list_jobs, start_all, stop_all
from twitch_pipeline.platform.lifecycle import (
    down,
    start_services,
    status,
    stop_services,
    up,
)
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import Settings, to_env

PRODUCER = "producers.cli:service"


def _producer(settings: Settings) -> tuple[ManagedProcess, list[str]]:
    name, argv = registry.resolve(PRODUCER)(settings)
    return ManagedProcess(name, settings.run_path), argv


def status_line(settings: Settings) -> str:
    """One line: health of each part, running jobs, rows in ClickHouse, sink lag and freshness."""
    report = status(settings)["components"]
    parts = [f"{name}:{'ok' if entry.get('healthy') else ('-' if entry.get('healthy') is None else 'DOWN')}" for name, entry in report.items()]
    running = sum(1 for job in list_jobs(settings) if job["state"] == "RUNNING")
    line = " ".join(parts) + f" | jobs running {running}"
    sink: dict[str, Any] = report.get("sink", {})
    if sink.get("available"):
        line += f" | sink {sink.get('rows_per_s', 0):.0f} rows/s, lag {sink.get('lag', '?')}, freshness {sink.get('freshness_s', '?')}s"
    return line


def run(settings: Settings, refresh_s: float = 5.0) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    producer, argv = _producer(settings)
    try:
        print(f"==> platform ({settings.run_path})")
        up(settings)
        print("==> streaming jobs")
        start_all(settings)
        print("==> connectors")
        start_services(settings)
        if not producer.running():
            producer.spawn(argv, env=to_env(settings))
        source = "Twitch" if settings.twitch_credentials_set else "synthetic"
        print(f"  {producer.name:<11} started ({source} source; log {producer.log_file})")
        print(f"\nFlink web UI:  {settings.flink_rest}")
        print(f"ClickHouse:    {settings.clickhouse_http_url}  (try: twitch-pipeline sql 'SELECT count() FROM game_streams_enriched')")
        print("Ctrl-C stops everything.\n")
        while not stop.wait(refresh_s):
            try:
                line = status_line(settings)
            except Exception as err:  # noqa: BLE001 - a status hiccup must not end the run
                line = f"status unavailable: {err}"
            sys.stdout.write("\r\033[K" + line[:200])
            sys.stdout.flush()
    finally:
        print("\n==> stopping")
        if producer.running():
            producer.stop(settings.stop_timeout_s)
            print(f"  {producer.name:<11} stopped")
        stop_services(settings)
        try:
            stop_all(settings)
        except Exception as err:  # noqa: BLE001 - still bring the platform down
            print(f"  jobs: {err}")
        down(settings)
    return 0

