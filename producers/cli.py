"""`twitch-pipeline produce`: a source (synthetic or Twitch) into Kafka, with a summary to reconcile against."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive count")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate (events/s, 0 = no cap)")
    return value


def _instant(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2026-11-21T11:05:00Z") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z for UTC")
    return int(moment.timestamp() * 1000)


def register(subparsers) -> None:
    p = subparsers.add_parser("produce", help="send Twitch events (synthetic or live) into Kafka",
                              description="Send Twitch events into Kafka: a realistic synthetic Twitch (default when no "
                                          "credentials are set) or the live Helix API and chat.")
    p.add_argument("--source", choices=("synthetic", "twitch"), default=None,
                   help="where events come from (default: twitch when TWITCH_CLIENT_ID/SECRET are set, else synthetic)")
    p.add_argument("--rate", type=_rate, default=None, help="cap in events/s (default: setting synthetic_rate; 0 = no cap)")
    p.add_argument("--events", type=_count, default=None, help="stop after exactly N events (unique + duplicates + malformed); default: run until interrupted")
    p.add_argument("--duplicates", type=_fraction, default=0.0, help="fraction of events that repeat an earlier one (same event_id / message_id)")
    p.add_argument("--malformed", type=_fraction, default=0.0, help="fraction of events that break the contract (bad JSON, types, fields, UTF-8, size)")
    p.add_argument("--seed", type=int, default=None, help="seed of the synthetic world and of the injected faults (default: setting synthetic_seed)")
    p.add_argument("--start-time", type=_instant, default=None, help="simulated start, ISO-8601 with zone (default: now)")
    p.add_argument("--summary", type=Path, default=None, help="also write the per-topic summary as JSON to this file")
    p.add_argument("--no-validate", action="store_true", help="skip the JSON Schema check of valid events")
    p.add_argument("--progress", type=Path, default=None,
                   help="keep a durable progress mark of a bounded synthetic run in this file; the same command run again "
                        "(after a crash, even kill -9) resumes after the last events Kafka acknowledged (producers/progress.py)")
    p.set_defaults(handler=produce)


def produce(settings: Settings, args: argparse.Namespace) -> int:
    from producers.run import RunOptions, run, summary_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    source = args.source or ("twitch" if settings.twitch_credentials_set else "synthetic")
    opts = RunOptions(source=source, rate=settings.synthetic_rate if args.rate is None else args.rate, events=args.events,
                      duplicates=args.duplicates, malformed=args.malformed,
                      seed=settings.synthetic_seed if args.seed is None else args.seed, start_ms=args.start_time,
                      validate=False if args.no_validate else None, progress=args.progress)
    if opts.duplicates + opts.malformed >= 1.0:
        raise PlatformError("--duplicates + --malformed must stay below 1")
    for flag, path in (("--summary", args.summary), ("--progress", args.progress)):
        if path is not None and not path.parent.is_dir():
            raise PlatformError(f"{flag}: directory {path.parent} does not exist")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `twitch-pipeline stop` ends a run cleanly
    try:
        result = run(settings, opts, stop=_interruptible(stop))
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary_table(result))
    if args.summary is not None:
        args.summary.write_text(json.dumps(result.summary, indent=2) + "\n")
    if result.source_failed:
        print(f"error: {result.source_failed}", file=sys.stderr)
        return 1
    if not result.ok:
        print(f"error: {sum(s['failed'] for s in result.summary.values())} events failed delivery, "
              f"{result.undelivered} undelivered, {result.heartbeat_failures} heartbeats failed", file=sys.stderr)
        return 1
    return 0


def _interruptible(stop: threading.Event) -> threading.Event:
    """Ctrl-C stops the run like SIGTERM: flush, heartbeats, summary (a second Ctrl-C aborts)."""

    def on_sigint(*_):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_sigint)
    return stop


def service(settings: Settings) -> tuple[str, list[str]]:
    """The continuous producer as a long-running service for `twitch-pipeline start` (twitch_pipeline.registry.SERVICES)."""
    source = "twitch" if settings.twitch_credentials_set else "synthetic"
    return "producer", [sys.executable, "-m", "twitch_pipeline.cli", "produce", "--source", source]
