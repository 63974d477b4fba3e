"""`up`, `down` and `status` over all components of the local platform."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from twitch_pipeline import registry
from twitch_pipeline.errors import PlatformError
from twitch_pipeline.platform.clickhouse import ClickHouse
from twitch_pipeline.platform.component import Component, ensure_dir
from twitch_pipeline.platform.dashboards import Dashboards
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.iceberg import Iceberg
from twitch_pipeline.platform.kafka import Kafka
from twitch_pipeline.platform.process import free_port
from twitch_pipeline.settings import Settings, to_env

Echo = Callable[[str], None]


def components(settings: Settings) -> list[Component]:
    """In start order; `down` goes in reverse."""
    return [Kafka(settings), Iceberg(settings), ClickHouse(settings), Flink(settings), Dashboards(settings)]


def isolated(settings: Settings, run_dir: Path) -> Settings:
    """The same settings on free ports in their own run directory: a platform that disturbs no other.

    Tests and benchmarks use it so that they never meet a user's platform (or each other) on a port or topic.
    """
    return dataclasses.replace(
        settings, run_dir=run_dir, kafka_port=free_port(), kafka_controller_port=free_port(),
        flink_rest_port=free_port(), flink_rpc_port=free_port(), clickhouse_port=free_port(), dashboard_port=free_port(),
    )


@contextmanager
def running(settings: Settings, names: Iterable[str] = ("kafka", "iceberg", "flink")) -> Iterator[Settings]:
    """Only the named components, started in platform order and stopped again on exit (no post-up hooks)."""
    wanted = set(names)
    ensure_dir(settings.run_path / "logs")
    started: list[Component] = []
    try:
        for part in components(settings):
            if part.name in wanted:
                part.start()
                started.append(part)
                part.wait_healthy()
        yield settings
    finally:
        for part in reversed(started):
            part.stop()


def up(settings: Settings, echo: Echo = print) -> dict[str, Any]:
    run = settings.run_path
    if run.exists() and not run.is_dir():
        raise PlatformError(f"run directory {run} is a file: remove it or set TWITCH_PIPELINE_RUN_DIR to a directory")
    ensure_dir(run)
    ensure_dir(run / "logs")
    parts = components(settings)
    for part in parts:  # fail on a taken port before starting anything
        if not part.running():
            part.check_ports()
    for part in [p for p in parts if not p.after_hooks]:
        _start(part, echo)
    for hook in registry.POST_UP_HOOKS:
        echo("  " + hook(settings))
    for part in [p for p in parts if p.after_hooks]:
        _start(part, echo)
    return status(settings)


def _start(part: Component, echo: Echo) -> None:
    began = time.monotonic()
    if part.running() and part.health().get("healthy"):
        echo(f"  {part.name:<11} already running  {part.endpoint()}")
        return
    echo(f"  {part.name:<11} starting …")
    part.start()
    part.wait_healthy()
    echo(f"  {part.name:<11} healthy in {time.monotonic() - began:4.1f}s  {part.endpoint()}")


def down(settings: Settings, echo: Echo = print) -> None:
    run = settings.run_path
    if not run.is_dir():
        echo(f"nothing to stop: {run} holds no platform")
        return
    from twitch_pipeline.platform.supervisor import supervisor_process

    supervisor_process(settings).stop(settings.stop_timeout_s)  # first, or it would restart what stops next
    stop_services(settings, echo)
    for part in reversed(components(settings)):
        running = [p for p in part.processes if p.running()]
        if not running:
            continue
        killed = part.stop()
        echo(f"  {part.name:<11} stopped" + (f" (killed after {settings.stop_timeout_s:.0f}s: {', '.join(killed)})" if killed else ""))


def status(settings: Settings) -> dict[str, Any]:
    run = settings.run_path
    if not run.is_dir():
        raise PlatformError(f"no platform in {run}: start one with `twitch-pipeline up` (or set TWITCH_PIPELINE_RUN_DIR)")
    from twitch_pipeline.platform.supervisor import read_report

    report = {}
    supervised = read_report(settings)
    for part in components(settings):
        report[part.name] = part.health()
        report[part.name].update({k: v for k, v in supervised.get(part.name, {}).items() if v})
        memory = [p.rss_mb() for p in part.processes if p.running()]
        if memory:
            report[part.name]["rss_mb"] = round(sum(m for m in memory if m), 1)
    for svc in services(settings):
        report[svc.name] = service_health(settings, svc)
    return {"run_dir": str(run), "components": report}


def service_health(settings: Settings, svc) -> dict[str, Any]:
    """A service that was never started (or was stopped) is not unhealthy: its `healthy` is None.

    What the service itself last said about its health (e.g. "waiting for Kafka at …") and what the
    supervisor recorded (restarts, last error) are added when present.
    """
    import json

    from twitch_pipeline.platform.supervisor import read_report

    state = svc.state()
    entry: dict[str, Any] = {"healthy": {"running": True, "crashed": False}.get(state), "state": state, "log": str(svc.log_file)}
    try:
        said = json.loads(settings.state_file(svc.name).read_text())
        if state == "running" and said.get("state", "ok") != "ok":
            entry["state"] = said["state"]
            entry["last_error"] = said.get("last_error", "")
    except (OSError, ValueError):
        pass
    entry.update({k: v for k, v in read_report(settings).get(svc.name, {}).items() if v})
    if state == "running" and svc.name in registry.SERVICE_HEALTH:
        entry.update(registry.SERVICE_HEALTH[svc.name](settings))
    return entry


def service_specs(settings: Settings):
    """(process, argv, env) of each long-running service (`start` runs them beside the Flink jobs)."""
    from twitch_pipeline.platform.process import ManagedProcess

    env = to_env(settings)
    return [(ManagedProcess(name, settings.run_path), argv, env) for name, argv in (service(settings) for service in registry.SERVICES)]


def services(settings: Settings):
    return [proc for proc, _, _ in service_specs(settings)]


def start_services(settings: Settings, echo: Echo = print, only: Iterable[str] | None = None) -> None:
    """Start the services (all, or those named in ``only``) that are not running yet."""
    for proc, argv, env in service_specs(settings):
        if only is not None and proc.name not in only:
            continue
        if proc.running():
            echo(f"  {proc.name:<11} already running")
            continue
        proc.spawn(argv, env=env)
        echo(f"  {proc.name:<11} started (log {proc.log_file})")


def stop_services(settings: Settings, echo: Echo = print) -> None:
    for proc in services(settings):
        if proc.running():
            proc.stop(settings.stop_timeout_s)
            echo(f"  {proc.name:<11} stopped")
