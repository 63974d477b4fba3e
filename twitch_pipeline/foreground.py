"""`twitch-pipeline run` (what `make run` calls): the whole pipeline in the foreground.

Starts the platform, the streaming jobs and the services (the producer — synthetic unless Twitch
credentials are set — and the ClickHouse sink), then supervises them: a part that dies, a platform
component included, is restarted with back-off (see :mod:`twitch_pipeline.platform.supervisor`). One
status line refreshes until Ctrl-C, which stops everything in reverse order: services, jobs (with
savepoints), then the platform.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from twitch_pipeline.jobs import list_jobs, start_all, stop_all
from twitch_pipeline.platform.lifecycle import down, start_services, status, stop_services, up
from twitch_pipeline.platform.supervisor import pipeline_supervisor
from twitch_pipeline.settings import Settings


def status_line(settings: Settings) -> str:
    """One line: health of each part (restarts and waits included), running jobs, sink lag and freshness."""
    report = status(settings)["components"]
    parts = []
    for name, entry in report.items():
        word = {True: "ok", None: "-"}.get(entry.get("healthy"), "DOWN")
        if entry.get("state", "").startswith("waiting"):
            word = "waiting"
        parts.append(f"{name}:{word}" + (f"(restarts {entry['restarts']})" if entry.get("restarts") else ""))
    running = sum(1 for job in list_jobs(settings) if job["state"] == "RUNNING")
    line = " ".join(parts) + f" | jobs running {running}"
    sink: dict[str, Any] = report.get("sink", {})
    if sink.get("available"):
        line += f" | sink {sink.get('rows_per_s', 0):.0f} rows/s, lag {sink.get('lag', '?')}, freshness {_seconds(sink.get('freshness_s'))}"
        line += f" (minute aggregates {_seconds(sink.get('window_freshness_s'))})"
    return line


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def run(settings: Settings, refresh_s: float = 5.0) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"==> platform ({settings.run_path})")
        up(settings)
        print("==> streaming jobs")
        start_all(settings)
        print("==> services")
        start_services(settings)
        source = "Twitch" if settings.twitch_credentials_set else "synthetic"
        print(f"\nSource:        {source}")
        print(f"Dashboards:    http://{settings.host}:{settings.dashboard_port}/  (data catalog: /catalog)")
        print(f"Flink web UI:  {settings.flink_rest}")
        print(f"ClickHouse:    {settings.clickhouse_http_url}  (try: twitch-pipeline sql 'SELECT count() FROM game_streams_enriched')")
        print("Ctrl-C stops everything.\n")
        supervisor = pipeline_supervisor(settings, echo=lambda msg: print(f"\r\033[K{msg}"))
        while not stop.wait(refresh_s):
            supervisor.tick()
            try:
                line = status_line(settings)
            except Exception as err:  # noqa: BLE001 - a status hiccup must not end the run
                line = f"status unavailable: {err}"
            sys.stdout.write("\r\033[K" + line[:200])
            sys.stdout.flush()
    finally:
        print("\n==> stopping")
        stop_services(settings)
        try:
            stop_all(settings)
        except Exception as err:  # noqa: BLE001 - still bring the platform down
            print(f"  jobs: {err}")
        down(settings)
    return 0
