"""The `twitch-pipeline` command: drives the local platform and the pipeline on it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from connectors.sink import cli as sink_cli
from producers import cli as producers_cli
from twitch_pipeline import backfill, chaos, check_command, k8s_manifests, sql_command
from twitch_pipeline.errors import ConfigurationError
from twitch_pipeline.settings import (
    Settings,
    SettingsError,
    env_example,
    load_settings,
    markdown_table,
    to_env,
    write_docs,
)

#: Modules exposing ``register(subparsers)`` that add CLI subcommands.
COMMAND_MODULES: list = [
    sql_command,  # `twitch-pipeline sql`
    producers_cli,  # `twitch-pipeline produce`
    sink_cli,  # `twitch-pipeline sink`
    check_command,  # `twitch-pipeline check`: data quality
    k8s_manifests,  # `twitch-pipeline k8s render`
    backfill,  # `twitch-pipeline backfill`: recompute aggregates of whole days from the lake
    chaos,  # `twitch-pipeline chaos`: exactly-once under kill -9 of every component
]

def _up(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.platform.lifecycle import up

    print(f"starting the platform in {settings.run_path}")
    up(settings)
    print("platform is up; `twitch-pipeline status` to check, `twitch-pipeline down` to stop")
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.platform.lifecycle import down

    down(settings)
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.platform.lifecycle import status

    report = status(settings)
    healthy = all(c.get("healthy") is not False for c in report["components"].values())
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for name, entry in report["components"].items():
            details = "  ".join(f"{k}={v}" for k, v in entry.items() if k != "healthy")
            mark = {True: "ok  ", False: "DOWN", None: "-   "}[entry.get("healthy")]
            print(f"{mark}  {name:<11} {details}")
    return 0 if healthy else 1


def _submit(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.jobs import submit

    job_id = submit(settings, args.job, args.args, resume=not args.fresh)
    print(f"submitted {args.job}: {job_id}")
    return 0


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.jobs import list_jobs

    jobs = list_jobs(settings)
    if args.json:
        print(json.dumps(jobs, indent=2))
    for job in [] if args.json else jobs:
        print(f"{job['id']}  {job['state']:<10}  {job['name']}")
    if not jobs and not args.json:
        print("no jobs")
    return 0


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.jobs import cancel

    print(f"cancelled {args.job} ({cancel(settings, args.job)})")
    return 0


def _start(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.jobs import start_all
    from twitch_pipeline.platform.lifecycle import start_services
    from twitch_pipeline.platform.supervisor import supervisor_process

    start_all(settings)
    start_services(settings)
    proc = supervisor_process(settings)
    if not proc.running():
        proc.spawn([sys.executable, "-m", "twitch_pipeline.cli", "supervise"], env=to_env(settings))
    print(f"  {proc.name:<11} watching the services and the platform (log {proc.log_file})")
    return 0


def _supervise(settings: Settings, args: argparse.Namespace) -> int:
    import signal
    import threading

    from twitch_pipeline.platform.supervisor import pipeline_supervisor

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pipeline_supervisor(settings, echo=lambda msg: print(msg, flush=True)).run(stop)
    return 0


def _stop(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.jobs import stop_all
    from twitch_pipeline.platform.lifecycle import stop_services
    from twitch_pipeline.platform.supervisor import supervisor_process

    supervisor_process(settings).stop(settings.stop_timeout_s)  # first, or it would restart what stops next
    stop_services(settings)
    stop_all(settings)
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.foreground import run

    return run(settings)


def _settings(settings: Settings, args: argparse.Namespace) -> int:
    if args.write:
        from connectors import catalog

        write_docs(sections={"catalog": catalog.markdown()})
        print("updated README.md settings and pipeline tables, and .env.example")
    elif args.env:
        print(env_example(), end="")
    else:
        print(markdown_table())
    return 0


def _expire_snapshots(settings: Settings, args: argparse.Namespace) -> int:
    from twitch_pipeline.platform.iceberg import expire_snapshots

    for table in expire_snapshots(settings):
        print(f"  {table['table']:<40} {table['expired']:>6} snapshots expired, {table['snapshots']} kept")
    return 0


Handler = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twitch-pipeline", description="Real-time Twitch analytics on Kafka, Flink, ClickHouse and Iceberg.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    command("up", _up, "start Kafka, Flink, ClickHouse and the Iceberg catalog and wait until healthy")
    command("down", _down, "stop everything `up` and `start` started")
    command("status", _status, "health of each component (exit 0 only if all are healthy)").add_argument("--json", action="store_true", help="machine-readable output")
    p = command("submit", _submit, "submit a Flink job (registered name or driver .py) with `flink run -py`")
    p.add_argument("job")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the job driver")
    p.add_argument("--fresh", action="store_true", help="ignore a savepoint left by `stop`")
    command("jobs", _jobs, "list Flink jobs and their state").add_argument("--json", action="store_true")
    command("cancel", _cancel, "cancel a running Flink job by name or id").add_argument("job")
    command("start", _start, "submit every streaming job, start the services (producer, sink) and a supervisor that restarts what dies")
    command("supervise", _supervise, "restart dead services and platform components with back-off, and expire the lake's old snapshots (what `start` runs in the background)")
    command("stop", _stop, "stop the connectors and the streaming jobs (with savepoints that `start` resumes)")
    command("run", _run, "everything in the foreground (platform, jobs, sink, producer) until Ctrl-C; what `make run` does")
    command("expire-snapshots", _expire_snapshots, "expire the lake tables' snapshots older than TWITCH_PIPELINE_LAKE_SNAPSHOT_RETENTION_S and delete the files only they used")
    p = command("settings", _settings, "print the settings table (markdown) or a .env template")
    p.add_argument("--env", action="store_true", help="print .env.example")
    p.add_argument("--write", action="store_true", help="regenerate the README table and .env.example")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return args.handler(settings, args)
    except (ConfigurationError, SettingsError, LookupError) as err:  # PlatformError is one
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
