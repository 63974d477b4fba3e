"""`twitch-pipeline sink`: run the ClickHouse sink in the foreground (SIGTERM/SIGINT stop it cleanly)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from twitch_pipeline.settings import Settings


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sink",
        help="load the Flink output topics into ClickHouse exactly once (foreground)",
        description="Load the Flink output topics into ClickHouse exactly once. Runs until SIGTERM/SIGINT; "
        "`twitch-pipeline start` runs it in the background.",
    )
    p.add_argument("--health", action="store_true", help="print the sink's health (rows/s, lag, freshness) as JSON and exit")
    p.set_defaults(handler=_sink)


def _sink(settings: Settings, args: argparse.Namespace) -> int:
    if args.health:
        from connectors.sink.health import sink_health

        report = sink_health(settings)
        print(json.dumps(report, indent=2, default=str))
        return 0 if report.get("available") else 1
    from connectors.sink.runner import run_sink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, _frame) -> None:
        logging.getLogger("twitch_pipeline.sink").info("signal %s: flushing and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_sink(settings, stop)
    return 0


def service(settings: Settings) -> tuple[str, list[str]]:
    """The SERVICES entry: `twitch-pipeline start` runs the sink as a managed background process."""
    return ("sink", [sys.executable, "-m", "twitch_pipeline.cli", "sink"])
