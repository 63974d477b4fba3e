"""Keeping the pipeline running: a part that dies is restarted with back-off, and every restart is on record.

`run` ticks a :class:`Supervisor` in its foreground loop; `start` leaves one running in the background
(`twitch-pipeline supervise`, stopped by `stop`). It watches the long-running services (producer, ClickHouse
sink) and the platform components (Kafka, ClickHouse server, Flink). A restart that fails is retried with
exponential back-off; the back-off resets once the part has stayed up for a while. Each part restarts in its
own thread, so a slow restart (Flink resubmitting its jobs: minutes under load) does not hold up the others
(a killed producer or sink waited for it before). Restarts and the last
error of each part are written to ``<run_dir>/state/supervisor.json``, where `status` and `run`'s status
line read them.

Besides restarts it does the lake's chore: every ``TWITCH_PIPELINE_LAKE_EXPIRE_INTERVAL_S`` it expires the
Iceberg tables' old snapshots (a streaming sink commits one a second; see :func:`connectors.iceberg.expire_snapshots`).
`status` shows the last expiry beside the Iceberg catalog.

Flink is special: a standalone cluster loses its jobs with its JobManager, so after restarting the cluster
the streaming jobs are resubmitted from their latest completed checkpoint — their Kafka transactions and
state resume from there, which keeps the output exactly once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from twitch_pipeline.errors import Backoff
from twitch_pipeline.settings import Settings

#: A part that has been up this long is healthy again: its next failure starts back-off from the beginning.
STABLE_S = 60.0


@dataclass
class Supervised:
    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    last_words: Callable[[], str] = lambda: ""  # why it died, e.g. the tail of its log


@dataclass
class _Record:
    restarts: int = 0
    last_error: str = ""
    last_restart_at: float | None = None
    next_try: float = 0.0
    up_since: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=1.0, max_s=60.0))
    restarting: bool = False  # a restart is under way (in its own thread)


@dataclass
class Chore:
    """Work a part needs every ``every_s`` seconds, first one interval after the start; each run in a thread of its
    own, and a failure is on record (``last_error``) and tried again at the next turn."""

    part: str  # the component whose status shows it
    name: str
    every_s: float
    run: Callable[[], str]  # does the work; returns a one-line summary
    next_at: float = 0.0
    running: bool = False
    summary: str = ""
    error: str = ""


class Supervisor:
    def __init__(self, parts: list[Supervised], state_path=None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, echo: Callable[[str], None] = print, concurrent: bool = False,
                 chores: list[Chore] | None = None):
        self.parts = parts
        self.chores = chores or []
        self.concurrent = concurrent  # restart each part in a thread of its own (tick() returns at once)
        self.state_path = state_path
        self.clock = clock
        self.wall = wall
        self.echo = echo
        now = clock()
        self.records = {p.name: _Record(up_since=now) for p in parts}
        for chore in self.chores:
            chore.next_at = now + chore.every_s

    def tick(self) -> None:
        """Check every part once; restart the dead ones whose back-off has passed."""
        now = self.clock()
        for part in self.parts:
            rec = self.records[part.name]
            if rec.restarting:
                continue
            if _safe(part.alive):
                if now - rec.up_since >= STABLE_S:
                    rec.backoff.reset()
                continue
            if now < rec.next_try:
                continue
            if rec.next_try == 0.0:  # first sight of this death
                rec.last_error = _safe(part.last_words, "") or "exited"
                self.echo(f"{part.name} is down ({rec.last_error[:200]}); restarting")
            rec.restarts += 1
            rec.last_restart_at = self.wall()
            rec.restarting = True
            self._run(lambda p=part, r=rec: self._restart(p, r), f"restart-{part.name}")
        for chore in self.chores:
            if not chore.running and now >= chore.next_at:
                chore.running, chore.next_at = True, now + chore.every_s
                self._run(lambda c=chore: self._do(c), f"chore-{chore.name}")
        self.save()

    def _run(self, work: Callable[[], None], name: str) -> None:
        """``work`` in a thread of its own when concurrent (tick() returns at once), else now."""
        if self.concurrent:
            threading.Thread(target=work, name=name, daemon=True).start()
        else:
            work()

    def _do(self, chore: Chore) -> None:
        try:
            summary = chore.run()
        except Exception as err:  # noqa: BLE001 - a failed chore is on record and runs again at its next turn
            chore.error = f"{chore.name} failed: {err}"
            self.echo(f"{chore.part}: {chore.error[:300]}")
        else:
            chore.summary, chore.error = f"{summary} ({time.strftime('%H:%M:%S', time.localtime(self.wall()))})", ""
        finally:
            chore.running = False

    def _restart(self, part: Supervised, rec: _Record) -> None:
        try:
            part.restart()
        except Exception as err:  # noqa: BLE001 - a failed restart is retried after back-off
            rec.last_error = f"restart failed: {err}"
            delay = rec.backoff.next_delay()
            rec.next_try = self.clock() + delay
            self.echo(f"{part.name}: {rec.last_error[:200]}; next try in {delay:.0f}s")
        else:
            rec.next_try = 0.0
            rec.up_since = self.clock()
            self.echo(f"{part.name} restarted (restart {rec.restarts})")
        finally:
            rec.restarting = False

    def report(self) -> dict[str, dict[str, Any]]:
        report: dict[str, dict[str, Any]] = {name: {"restarts": r.restarts, "last_error": r.last_error, "last_restart_at": r.last_restart_at}
                                             for name, r in self.records.items()}
        for chore in self.chores:
            entry = report.setdefault(chore.part, {})
            entry[chore.name] = chore.summary
            if chore.error:
                entry["last_error"] = chore.error
        return report

    def save(self) -> None:
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.report()))
            tmp.replace(self.state_path)

    def run(self, stop: threading.Event, interval_s: float = 2.0) -> None:
        while not stop.wait(interval_s):
            self.tick()


def _safe(fn: Callable[[], Any], default: Any = False) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a probe that fails counts as "not alive"
        return default


def read_report(settings: Settings) -> dict[str, dict[str, Any]]:
    """The last report a supervisor wrote (empty when none ran)."""
    try:
        return json.loads(settings.state_file("supervisor").read_text())
    except (OSError, ValueError):
        return {}


def pipeline_supervisor(settings: Settings, echo: Callable[[str], None] = print) -> Supervisor:
    """Supervision of this run directory's platform components and services."""
    from twitch_pipeline.platform.lifecycle import components, service_specs

    parts: list[Supervised] = []
    for comp in components(settings):
        if not comp.processes:
            continue  # an external service (its URL is set) or one without a process (the Iceberg catalog file)
        restart = (lambda c=comp: _restart_flink(settings, c)) if comp.name == "flink" else (lambda c=comp: _restart_component(c))
        parts.append(Supervised(comp.name, comp.running, restart, lambda c=comp: last_words([p for p in c.processes if not p.running()])))
    for proc, argv, env in service_specs(settings):
        parts.append(Supervised(proc.name, proc.running, lambda p=proc, a=argv, e=env: p.spawn(a, env=e), lambda p=proc: last_words([p])))
    return Supervisor(parts, settings.state_file("supervisor"), echo=echo, concurrent=True, chores=lake_chores(settings))


def lake_chores(settings: Settings) -> list[Chore]:
    """The lake's snapshot expiry every ``lake_expire_interval_s`` (none when 0)."""
    if settings.lake_expire_interval_s <= 0:
        return []
    return [Chore("iceberg", "snapshot_expiry", settings.lake_expire_interval_s, lambda: expire_summary(settings))]


def expire_summary(settings: Settings) -> str:
    """Expire the lake's old snapshots now; what was done, in a line."""
    from twitch_pipeline.platform.iceberg import expire_snapshots

    done = expire_snapshots(settings)
    return f"{sum(t['expired'] for t in done)} snapshots expired in {len(done)} tables"


#: Log lines that say why a process ended.
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL|CRITICAL|Exception|Error|Traceback|error:)")


def last_words(procs) -> str:
    """Why the processes ended, from their logs: the last line that reads like an error, if any.

    A process killed from outside (kill -9, the OOM killer) leaves none; its log then ends in ordinary lines.
    """
    found = []
    for proc in procs:
        try:
            lines = proc.log_file.read_text(errors="replace").splitlines()[-200:]
        except OSError:
            lines = []
        errors = [line.strip() for line in lines if _ERROR_LINE.search(line)]
        found.append(f"{proc.name}: {errors[-1][:300]}" if errors else f"{proc.name}: exited with no error in its log (killed?)")
    return "; ".join(found)


def _restart_component(comp) -> None:
    comp.stop()  # whatever is left of it (one of two processes may still run)
    comp.start()
    comp.wait_healthy()


def _restart_flink(settings: Settings, comp) -> None:
    from connectors import catalog
    from twitch_pipeline.jobs import find_active, resume_from_latest_checkpoints, start_all

    jobmanager = comp.processes[0]
    if jobmanager.running():
        # Only the TaskManager died: the JobManager still holds the jobs and restarts them from their latest
        # checkpoint (restart strategy) once a TaskManager registers again. Restarting the whole cluster would
        # resubmit every job, minutes of work under load. Only a job that gave up meanwhile is resumed.
        comp.start()  # spawns only what is not running
        comp.wait_healthy()
        names = [job.name for job in catalog.streaming_jobs() if find_active(settings, job.name) is None]
        if not names:
            return
    else:
        _restart_component(comp)
        names = None  # the cluster lost every job
    resume_from_latest_checkpoints(settings, names)
    start_all(settings, echo=lambda line: None)


def supervisor_process(settings: Settings):
    """The background supervisor that `start` leaves running (`twitch-pipeline supervise`)."""
    from twitch_pipeline.platform.process import ManagedProcess

    return ManagedProcess("supervisor", settings.run_path)
