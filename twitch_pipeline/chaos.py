"""`twitch-pipeline chaos`: exactly-once under kill -9 of every component, proven by reconciling every store.

A bounded synthetic run (duplicates and malformed events injected) goes through the whole pipeline on a
platform of its own, while a seeded schedule kills -9 the Kafka broker, the Flink JobManager and TaskManager,
the ClickHouse sink, the embedded ClickHouse server and the producer — several times each, one of each
component's kills twice in a row (again as soon as it is back), and the Flink kills while a checkpoint is in
flight. Nothing is restarted by hand: the :class:`~twitch_pipeline.platform.supervisor.Supervisor` that `run`
and `start` use brings every part back (a restarted Flink cluster resumes its jobs from their checkpoints);
the producer resumes after its durable progress mark (``produce --progress``, producers/progress.py).

At the end the stores are reconciled with what the producer sent (:func:`reconcile`): every unique valid
event exactly once in ClickHouse (``count()`` without FINAL, and ``uniqExact``) and in the Iceberg lake,
every minute aggregate equal to its recomputation from the enriched rows (and the lake's copy of every gold
table equal to ClickHouse's), every malformed event in the dead letters. The kill schedule depends on the seed
only, so ``--seed`` replays a failure's schedule.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from connectors import catalog
from twitch_pipeline.settings import PROJECT_ROOT, Settings, to_env
from twitch_pipeline.text_table import render_table

#: What gets killed (their process names in the run directory), in the order the schedule draws them.
TARGETS = ("kafka", "flink-jobmanager", "flink-taskmanager", "sink", "clickhouse", "producer")
#: The supervised part that brings a target back.
PART = {"flink-jobmanager": "flink", "flink-taskmanager": "flink"}
#: The components whose kills wait for a checkpoint in flight (the first kill of each).
DURING_CHECKPOINT = ("flink-jobmanager", "flink-taskmanager")

Echo = Callable[[str], None]


@dataclass
class Kill:
    at: float  # fraction of the run's events the producer has delivered when the kill is due
    target: str
    times: int = 1  # 2: killed again as soon as it is back
    during_checkpoint: bool = False
    # what happened
    killed_at_s: list[float] = field(default_factory=list)
    back_after_s: list[float] = field(default_factory=list)
    note: str = ""

    def describe(self) -> str:
        how = (" twice in a row" if self.times == 2 else "") + (" during a checkpoint" if self.during_checkpoint else "")
        return f"{self.target}{how} at {self.at:.0%} of the events"


@dataclass
class ChaosOptions:
    events: int = 2_000_000
    seed: int | None = None
    kills_per_component: int = 3
    duplicates: float = 0.1
    malformed: float = 0.01
    rate: float = 0.0  # producer cap in events/s (0: as fast as it goes)
    report: Path | None = PROJECT_ROOT / "reports" / "chaos.json"
    settle_timeout_s: float = 900.0  # how long a part may take to come back before the run fails
    stall_s: float = 600.0  # the end: how long the stores may make no progress before reconciling anyway


@dataclass
class Check:
    name: str
    store: str
    expected: Any
    found: Any
    passed: bool
    detail: str = ""


def plan(seed: int, kills_per_component: int) -> list[Kill]:
    """The kill schedule of a seed: ``kills_per_component`` kills of each target, one pair of them back to back
    (when there are two or more), the first Flink kill of each process during a checkpoint."""
    rng = random.Random(f"chaos:{seed}")
    kills = []
    for target in TARGETS:
        pairs = 1 if kills_per_component >= 2 else 0
        shapes = [2] * pairs + [1] * (kills_per_component - 2 * pairs)
        # The producer's kills come while it still has most of its events to send; the others anywhere in the run.
        high = 0.6 if target == "producer" else 0.95
        ats = sorted(rng.uniform(0.05, high) for _ in shapes)
        rng.shuffle(shapes)
        for i, (at, times) in enumerate(zip(ats, shapes)):
            kills.append(Kill(round(at, 3), target, times, during_checkpoint=target in DURING_CHECKPOINT and i == 0))
    return sorted(kills, key=lambda k: k.at)


class Chaos:
    def __init__(self, settings: Settings, opts: ChaosOptions, echo: Echo = print):
        self.settings, self.opts = settings, opts
        self.seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(3), "big")
        self.schedule = plan(self.seed, opts.kills_per_component)
        self.began = time.monotonic()
        self.echo = lambda line: echo(f"[{self.elapsed():7.1f}s] {line}")
        work = settings.run_path / "chaos"
        self.progress_path, self.summary_path = work / "producer-progress.json", work / "producer-summary.json"
        self.start_ms = int(time.time() // 60 * 60_000)  # the synthetic world's start: now, so no TTL drops its rows
        self.supervisor = None
        self._last_report = 0.0
        self._in_producer_kill = False

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from twitch_pipeline.jobs import start_all
        from twitch_pipeline.platform.lifecycle import down, start_services, up

        o, load_before = self.opts, os.getloadavg()
        self.echo(f"chaos seed {self.seed}: {o.events:,} events ({o.duplicates:.0%} duplicates, {o.malformed:.0%} malformed), "
                  f"{o.kills_per_component} kills per component, platform in {self.settings.run_path}")
        self.echo(f"replay with: twitch-pipeline chaos --seed {self.seed} --events {o.events} --kills-per-component {o.kills_per_component} "
                  f"--rate {o.rate:g} --duplicates {o.duplicates:g} --malformed {o.malformed:g}")
        self.echo("kill schedule:")
        for n, kill in enumerate(self.schedule, 1):
            self.echo(f"  {n:>2}. {kill.describe()}")
        stop, supervision = threading.Event(), None
        checks: list[Check] = []
        summary: dict[str, Any] = {}
        mark = None
        try:
            self.progress_path.parent.mkdir(parents=True, exist_ok=True)
            up(self.settings, echo=self.echo)
            start_all(self.settings, echo=self.echo)
            start_services(self.settings, echo=self.echo, only=["sink"])
            self._start_producer()
            self.supervisor = self._supervisor()
            supervision = threading.Thread(target=self.supervisor.run, args=(stop, 1.0), name="supervisor", daemon=True)
            supervision.start()
            for kill in self.schedule:
                self._carry_out(kill)
            self._wait(self._producer_finished, None, "the producer to finish its run")
            mark = self._mark()
            summary = json.loads(self.summary_path.read_text())
            self._wait(self._settled, o.settle_timeout_s, "every part running again")
            self.echo("all kills done and the producer finished; waiting for the stores to catch up")
            self._drain(summary)
            checks = reconcile(self.settings, summary, mark.resent_malformed if mark else {})
        except Exception as err:  # noqa: BLE001 - a run that could not be carried out is a failed run, reported like one
            checks.append(Check("the chaos run was carried out", "-", "completed", f"{type(err).__name__}: {err}"[:300], False))
        finally:
            stop.set()
            if supervision is not None:  # a restart under way would start a part again after the teardown
                supervision.join()
                deadline = time.monotonic() + 600
                while any(r.restarting for r in self.supervisor.records.values()) and time.monotonic() < deadline:
                    time.sleep(0.5)
            from twitch_pipeline.platform.process import ManagedProcess

            ManagedProcess("producer", self.settings.run_path).stop(self.settings.stop_timeout_s)
            down(self.settings, echo=lambda _: None)
        missed = [k for k in self.schedule if len(k.killed_at_s) < k.times]
        checks.append(Check("every scheduled kill was carried out", "-", sum(k.times for k in self.schedule),
                            sum(len(k.killed_at_s) for k in self.schedule), not missed, "; ".join(f"{k.describe()}: {k.note}" for k in missed)))
        report = self._report(checks, summary, mark, load_before)
        self.echo("result:\n" + render_table(["check", "store", "expected", "found", "result"],
                                              [[c.name, c.store, c.expected, c.found, "pass" if c.passed else "FAIL"] for c in checks]))
        self.echo(f"{'PASSED' if report['passed'] else 'FAILED'} (seed {self.seed}) in {self.elapsed():.0f}s, load average {report['load_average']}")
        if self.opts.report is not None:
            self.opts.report.parent.mkdir(parents=True, exist_ok=True)
            self.opts.report.write_text(json.dumps(report, indent=2, default=str) + "\n")
            self.echo(f"report: {self.opts.report}")
        return report

    def _report(self, checks: list[Check], summary: dict[str, Any], mark, load_before) -> dict[str, Any]:
        kills: dict[str, int] = {t: 0 for t in TARGETS}
        for kill in self.schedule:
            kills[kill.target] += len(kill.killed_at_s)
        stores: dict[str, dict[str, Any]] = {}
        for c in checks:
            stores.setdefault(c.store, {})[c.name] = {"expected": c.expected, "found": c.found, "passed": c.passed}
        restarts = self.supervisor.report() if self.supervisor else {}
        return {
            "passed": all(c.passed for c in checks), "events": self.opts.events, "seed": self.seed,
            "duplicates": self.opts.duplicates, "malformed": self.opts.malformed, "rate": self.opts.rate,
            "synthetic_start": dt.datetime.fromtimestamp(self.start_ms / 1000, dt.timezone.utc).isoformat(),
            "duration_s": round(self.elapsed(), 1), "load_average": [round(x, 1) for x in os.getloadavg()],
            "load_average_at_start": [round(x, 1) for x in load_before], "cpus": os.cpu_count(),
            "kills": kills, "kill_schedule": [asdict(k) for k in self.schedule],
            "restarts": {name: r["restarts"] for name, r in restarts.items()},
            "producer": {"summary": summary, "resumes": mark.resumes if mark else None,
                         "resent_malformed_at_most": mark.resent_malformed if mark else None},
            "stores": stores, "checks": [asdict(c) for c in checks],
        }

    # -- the producer --------------------------------------------------------------------------------------
    def _producer_argv(self) -> list[str]:
        o = self.opts
        start = dt.datetime.fromtimestamp(self.start_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [sys.executable, "-m", "twitch_pipeline.cli", "produce", "--source", "synthetic", "--events", str(o.events),
                "--duplicates", str(o.duplicates), "--malformed", str(o.malformed), "--seed", str(self.seed), "--start-time", start,
                "--rate", str(o.rate), "--no-validate", "--progress", str(self.progress_path), "--summary", str(self.summary_path)]

    def _producer(self):
        from twitch_pipeline.platform.process import ManagedProcess

        return ManagedProcess("producer", self.settings.run_path)

    def _start_producer(self) -> None:
        self._producer().spawn(self._producer_argv(), env=to_env(self.settings))
        self.echo(f"producer started (log {self._producer().log_file})")

    def _producer_finished(self) -> bool:
        return self.summary_path.exists()

    def _mark(self):
        from producers.progress import read_mark

        return read_mark(self.progress_path)

    def _fraction(self) -> float:
        if self._producer_finished():
            return 1.0
        mark = self._mark()
        return mark.delivered / self.opts.events if mark else 0.0

    # -- supervision ---------------------------------------------------------------------------------------
    def _supervisor(self):
        """The pipeline's own supervisor, with this run's bounded producer in place of the continuous one."""
        from twitch_pipeline.platform.supervisor import Supervised, Supervisor, last_words, pipeline_supervisor

        wanted = {PART.get(t, t) for t in TARGETS} - {"producer"}
        parts = [p for p in pipeline_supervisor(self.settings, echo=self.echo).parts if p.name in wanted]
        producer = self._producer()
        parts.append(Supervised("producer", lambda: producer.running() or self._producer_finished(),
                                lambda: producer.spawn(self._producer_argv(), env=to_env(self.settings)), lambda: last_words([producer])))
        return Supervisor(parts, self.settings.state_file("supervisor"), echo=self.echo, concurrent=True)

    def _part(self, name: str):
        return next(p for p in self.supervisor.parts if p.name == name)

    def _restarts(self, name: str) -> int:
        return self.supervisor.records[name].restarts

    def _jobs_running(self, states: set[str]) -> bool:
        from twitch_pipeline.jobs import list_jobs

        current = {j["name"]: j["state"] for j in list_jobs(self.settings) if j["state"] in states}
        return all(job.name in current for job in catalog.streaming_jobs())

    def _settled(self) -> bool:
        """Every part alive, every streaming job running."""
        return all(p.alive() for p in self.supervisor.parts) and self._jobs_running({"RUNNING"})

    def _back(self, name: str, restarts_before: int) -> bool:
        """The supervisor has brought the part back: its restart completed (for Flink: cluster up, jobs resubmitted)."""
        record = self.supervisor.records[name]
        restarted = self._restarts(name) > restarts_before and not record.restarting and record.next_try == 0.0
        if not self._part(name).alive() or not (restarted or name == "producer"):
            return False
        if name == "flink":
            from twitch_pipeline.jobs import ACTIVE

            return self._jobs_running(ACTIVE)
        return True

    # -- kills ---------------------------------------------------------------------------------------------
    def _carry_out(self, kill: Kill) -> None:
        if kill.target == "producer":
            return  # the producer's kills fire from every wait (_wait), whatever else is going on
        self._wait(lambda: self._fraction() >= kill.at, None, f"{kill.at:.0%} of the events for the next kill")
        self._wait(self._settled, self.opts.settle_timeout_s, "every part running before the next kill")
        self._execute(kill)
        self._wait(self._settled, self.opts.settle_timeout_s, f"{kill.target} running again")

    def _execute(self, kill: Kill) -> None:
        part = PART.get(kill.target, kill.target)
        for n in range(kill.times):
            if kill.during_checkpoint and n == 0 and not self._checkpoint_in_flight():
                kill.note = "no checkpoint in flight within 60s; killed anyway"
            restarts = self._restarts(part)
            proc = self._process(kill.target)
            if not proc.running():
                kill.note = f"{kill.target} was not running when its kill was due"
                return
            proc.kill()
            kill.killed_at_s.append(round(self.elapsed(), 1))
            self.echo(f"KILL -9 {kill.target}" + (f" (again, {n + 1} of {kill.times})" if n else "")
                      + (" during a checkpoint" if kill.during_checkpoint and n == 0 and not kill.note else ""))
            self._wait(lambda before=restarts: self._back(part, before), self.opts.settle_timeout_s, f"{kill.target} back")
            kill.back_after_s.append(round(self.elapsed() - kill.killed_at_s[-1], 1))
            self.echo(f"{kill.target} back after {kill.back_after_s[-1]:.0f}s")

    def _process(self, target: str):
        from twitch_pipeline.platform.process import ManagedProcess

        return ManagedProcess(target, self.settings.run_path)

    def _checkpoint_in_flight(self, timeout_s: float = 60.0) -> bool:
        """Poll the streaming jobs' checkpoint statistics until one of them has a checkpoint in progress."""
        from twitch_pipeline.jobs import list_jobs
        from twitch_pipeline.platform.flink import Flink

        flink = Flink(self.settings)
        ids = [j["id"] for j in list_jobs(self.settings) if j["state"] == "RUNNING"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for job_id in ids:
                try:
                    if flink.rest(f"/jobs/{job_id}/checkpoints", timeout=2)["counts"]["in_progress"] > 0:
                        return True
                except (OSError, KeyError, ValueError):
                    pass
        return False

    def _producer_kills(self) -> None:
        """Kill the producer when one of its kills is due (called from every wait, so it lands during production)."""
        if self._in_producer_kill or self.supervisor is None:
            return
        due = [k for k in self.schedule if k.target == "producer" and not k.killed_at_s and not k.note and self._fraction() >= k.at]
        if not due:
            return
        kill = due[0]
        if self._producer_finished():
            kill.note = "the producer had finished before the kill was due (raise --events or lower --rate)"
            return
        self._in_producer_kill = True
        try:
            self._execute(kill)
        finally:
            self._in_producer_kill = False

    def _wait(self, done: Callable[[], bool], timeout_s: float | None, what: str) -> None:
        """Poll ``done`` (the producer's kills and the progress line go on meanwhile); raise after ``timeout_s``."""
        from twitch_pipeline.errors import PlatformError

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                if done():
                    return
            except Exception:  # noqa: BLE001 - a part that is down answers with errors: not yet
                pass
            self._producer_kills()
            self._progress_line()
            if deadline is not None and time.monotonic() > deadline:
                raise PlatformError(f"{what} did not happen within {timeout_s:.0f}s")
            time.sleep(0.2)

    def _progress_line(self, every_s: float = 20.0) -> None:
        if time.monotonic() - self._last_report < every_s:
            return
        self._last_report = time.monotonic()
        try:
            rows = clickhouse_counts(self.settings, ("game_streams_enriched", "chat_silver"))
            stored = f"ClickHouse: {rows['game_streams_enriched']:,} enriched, {rows['chat_silver']:,} chat"
        except Exception:  # noqa: BLE001 - ClickHouse may be the part that is down
            stored = "ClickHouse: unavailable"
        done = sum(len(k.killed_at_s) for k in self.schedule)
        self.echo(f"produced {self._fraction():.0%} | {stored} | kills {done}/{sum(k.times for k in self.schedule)} | "
                  f"load {os.getloadavg()[0]:.1f}")

    # -- the end ---------------------------------------------------------------------------------------------
    def _drain(self, summary: dict[str, Any]) -> None:
        """Wait until the stores hold what was sent, or stop growing for ``stall_s`` (then reconcile shows the gap)."""
        targets = {"game_streams_enriched": summary["game_streams"]["unique"], "chat_silver": summary["chat_messages"]["unique"]}
        self._until_stalled(lambda: _landed(self.settings, tuple(targets)), targets, "ClickHouse")
        self._until_stalled(lambda: {"stream-minutes": _aggregated_stream_minutes(self.settings)},
                            {"stream-minutes": _stream_minutes(self.settings)}, "the minute aggregates")
        self._until_stalled(lambda: {"chat messages": _chat_messages(self.settings)[1] or 0},
                            {"chat messages": _chat_messages(self.settings)[0]}, "the chat aggregates")
        self._until_stalled(lambda: {name: _lake_rows(self.settings, name) for name in targets}, targets, "the lake")
        # the sink may still be loading what the jobs committed to the lake's gold tables at the same checkpoints
        gold = {name: _lake_rows(self.settings, name) for name in _gold_tables()}
        self._until_stalled(lambda: clickhouse_counts(self.settings, tuple(gold)), gold, "the gold tables in ClickHouse")

    def _until_stalled(self, current: Callable[[], dict[str, int]], targets: dict[str, int], what: str) -> None:
        last, changed = None, time.monotonic()
        while True:
            try:
                now = current()
            except Exception:  # noqa: BLE001 - a store still recovering: not yet
                now = last
            if now is not None and all(now[k] >= v for k, v in targets.items()):
                return
            if now != last:
                last, changed = now, time.monotonic()
            elif time.monotonic() - changed > self.opts.stall_s:
                self.echo(f"{what} stopped growing at {last} (expected {targets}); reconciling anyway")
                return
            self._progress_line()
            time.sleep(2)


# -- reconciliation ----------------------------------------------------------------------------------------------
TAKEN_FOR_VALID = "no malformed event taken for a valid one"
EVERY_MALFORMED = "every malformed event in the dead letters"
#: The late_events reason of an event that never reached the table (behind the deduplicating stage's watermark).
LATE_REASON = {"game_streams_enriched": "late", "chat_silver": "chat_late_for_dedup"}
#: Each minute aggregate of aggregate_streams as the Flink SQL defines it (flink_jobs/sql/aggregate_windows.sql),
#: recomputed in ClickHouse from the enriched rows: (table, key columns, value columns, recomputation).
_STREAM_MINUTES = """
    SELECT toUnixTimestamp(toStartOfMinute(data_retrieved_at)) AS t, stream_id,
           argMax(tuple(game_id, ifNull(viewer_count, 0), language, is_mature, broadcaster_type, started_at, data_retrieved_at),
                  data_retrieved_at) AS s
    FROM game_streams_enriched
    WHERE event_id NOT IN (SELECT event_id FROM late_events WHERE reason = 'late_for_window')
    GROUP BY t, stream_id"""
AGGREGATES = (
    ("game_minute_stats", "t, game_id", "viewers_sum, viewers_max, live_streams, new_streams",
     "SELECT t, s.1 AS game_id, sum(s.2) AS viewers_sum, max(s.2) AS viewers_max, count() AS live_streams, "
     # Flink's TIMESTAMPDIFF(SECOND, …) truncates the millisecond difference; dateDiff('second', …) counts second
     # boundaries, which made a stream that went live 59.2 s before its first poll "not new" here (chaos runs).
     "countIf(d < 0 OR d - d % {poll} <= w) AS new_streams FROM (SELECT *, "
     "intDiv(toUnixTimestamp64Milli(s.7) - toUnixTimestamp64Milli(s.6), 1000) AS d, "
     "intDiv(toUnixTimestamp64Milli(s.7) - t * 1000, 1000) AS w FROM ({m})) GROUP BY t, game_id"),
    ("language_minute_stats", "t, language", "viewers_sum, live_streams",
     "SELECT t, ifNull(s.3, '') AS language, sum(s.2) AS viewers_sum, count() AS live_streams FROM ({m}) GROUP BY t, language"),
    ("share_minute_stats", "t, dimension, value", "live_streams, viewers_sum",
     "SELECT t, dimension, value, count() AS live_streams, sum(v) AS viewers_sum FROM ("
     "SELECT t, 'is_mature' AS dimension, multiIf(s.4 IS NULL, 'unknown', s.4, 'true', 'false') AS value, s.2 AS v FROM ({m}) "
     "UNION ALL SELECT t, 'broadcaster_type', ifNull(s.5, 'unknown'), s.2 FROM ({m})) GROUP BY t, dimension, value"),
    ("stream_duration_stats", "t, game_id, duration_bucket", "live_streams",
     # TIMESTAMPDIFF(SECOND, …) < 3600 is a difference under 3,600,000 ms (ClickHouse's dateDiff counts second boundaries).
     "SELECT t, s.1 AS game_id, multiIf(d < 3600000, '0-1h', d < 7200000, '1-2h', d < 14400000, '2-4h', d < 28800000, '4-8h', '8h+') "
     "AS duration_bucket, count() AS live_streams "
     "FROM (SELECT *, toUnixTimestamp64Milli(s.7) - toUnixTimestamp64Milli(s.6) AS d FROM ({m})) GROUP BY t, game_id, duration_bucket"),
)


def clickhouse_counts(settings: Settings, tables: tuple[str, ...]) -> dict[str, int]:
    """``count()`` (no FINAL) of each table."""
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        return {t: client.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in tables}


def _chat_messages(settings: Settings) -> tuple[int, int]:
    """(chat_silver rows not late for their window, messages counted in chat_minute_stats)."""
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        return tuple(client.query(
            "SELECT (SELECT count() FROM chat_silver WHERE message_id NOT IN (SELECT event_id FROM late_events WHERE reason = 'chat_late_for_window')), "
            "(SELECT sum(messages) FROM chat_minute_stats)").result_rows[0])


def _landed(settings: Settings, tables: tuple[str, ...]) -> dict[str, int]:
    """Per table: its rows plus the events that went late instead (what must add up to the unique events sent)."""
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        return {t: client.query(f"SELECT (SELECT count() FROM {t}) + (SELECT uniqExact(event_id) FROM late_events WHERE reason = '{LATE_REASON[t]}' "
                                f"AND event_id NOT IN (SELECT {catalog.output(t).partition_key[0]} FROM {t}))").result_rows[0][0] for t in tables}


def _gold_tables() -> tuple[str, ...]:
    """The tables both stores hold besides the event-level ones: the minute aggregates and the top-N tables."""
    return tuple(o.name for o in catalog.OUTPUTS if o.iceberg and o.clickhouse and o.name not in LATE_REASON)


def _stream_minutes(settings: Settings) -> int:
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        return client.query(f"SELECT count() FROM ({_STREAM_MINUTES})").result_rows[0][0]


def _aggregated_stream_minutes(settings: Settings) -> int:
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        return client.query("SELECT sum(live_streams) FROM game_minute_stats").result_rows[0][0] or 0


def _lake_rows(settings: Settings, table: str) -> int:
    from connectors.iceberg import load_catalog

    lake = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}")
    key = catalog.output(table).partition_key[0]
    return lake.scan(selected_fields=(key,)).to_arrow().num_rows


def lake_keys(settings: Settings, table: str, form: str | None = None) -> tuple[int, int]:
    """(rows, distinct row keys) of a lake table; with ``form`` (a regular expression), of the rows whose key matches it."""
    import pyarrow.compute as pc

    from connectors.iceberg import load_catalog

    lake = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}")
    key = catalog.output(table).partition_key[0]
    column = lake.scan(selected_fields=(key,)).to_arrow().column(key)
    if form is not None:
        column = column.filter(pc.match_substring_regex(column, form))
    return len(column), pc.count_distinct(column).as_py()


def _comparable(value: Any) -> Any:
    """A cell as both stores give it back: instants as epoch milliseconds (ClickHouse keeps milliseconds, the lake
    microseconds; a naive datetime is UTC), floats to 9 places (one double through JSON and Parquet)."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return round(aware.timestamp() * 1000)
    return round(value, 9) if isinstance(value, float) else value


def lake_against_clickhouse(settings: Settings, client: Any, table: str) -> tuple[int, int, int, int]:
    """(ClickHouse rows, lake rows, rows only in ClickHouse, rows only in the lake) of a table both stores hold, over
    its catalog columns, as multisets: one row twice in one store and once in the other is a difference."""
    from collections import Counter

    from connectors.iceberg import load_catalog

    columns = [c.name for c in catalog.output(table).columns]
    in_clickhouse = Counter(tuple(map(_comparable, row)) for row in
                            client.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {table}").result_rows)
    arrow = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}").scan(selected_fields=tuple(columns)).to_arrow()
    in_lake = Counter(tuple(map(_comparable, row)) for row in zip(*(arrow.column(c).to_pylist() for c in columns)))
    return sum(in_clickhouse.values()), sum(in_lake.values()), sum((in_clickhouse - in_lake).values()), sum((in_lake - in_clickhouse).values())


#: The form of the keys the synthetic producer makes (producers/contracts.py stream_event_id; uuid4 message ids). A
#: row with another key comes from a malformed event the pipeline took for a valid one (an id sent as a JSON number).
KEY_FORM = {"game_streams_enriched": "^[0-9a-f]{32}$", "chat_silver": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}


def dead_letters(settings: Settings, timeout_s: float = 600.0) -> dict[str, dict[str, int]]:
    """Per source topic: dead-letter records and distinct source positions (topic, partition, offset), read_committed."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from connectors.kafka import client_config, topic_partitions

    topic = next(t.name for t in catalog.TOPICS if t.name == "dead_letter")
    consumer = Consumer(client_config(settings, **{"group.id": f"chaos-{os.urandom(4).hex()}", "isolation.level": "read_committed",
                                                   "enable.partition.eof": True, "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
    found: dict[str, dict[str, Any]] = {}
    try:
        partitions = topic_partitions(consumer.list_topics(topic, timeout=10), topic)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        open_partitions, deadline = set(partitions), time.monotonic() + timeout_s
        while open_partitions and time.monotonic() < deadline:
            for msg in consumer.consume(10000, timeout=1.0):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(msg.partition())
                    continue
                record = json.loads(msg.value())
                entry = found.setdefault(f"{record.get('stage')}:{record.get('source_topic')}", {"records": 0, "positions": set()})
                entry["records"] += 1
                entry["positions"].add((record.get("source_partition"), record.get("source_offset")))
    finally:
        consumer.close()
    return {k: {"records": v["records"], "distinct": len(v["positions"])} for k, v in found.items()}


def reconcile(settings: Settings, summary: dict[str, Any], resent_malformed: dict[str, int]) -> list[Check]:
    """What the stores hold against what the producer sent (its summary of the whole run, resumes included)."""
    from connectors.clickhouse import clickhouse_client

    checks: list[Check] = []
    late_only: dict[str, int] = {}
    unique = {"game_streams_enriched": summary["game_streams"]["unique"], "chat_silver": summary["chat_messages"]["unique"]}
    with clickhouse_client(settings) as client:
        def one(sql: str) -> Any:
            return client.query(sql).result_rows[0]

        for table, expected in unique.items():
            key, form = catalog.output(table).partition_key[0], KEY_FORM[table]
            rows, ids, foreign = one(f"SELECT countIf(match({key}, '{form}')), uniqExactIf({key}, match({key}, '{form}')), "
                                     f"countIf(NOT match({key}, '{form}')) FROM {table}")
            # An event behind its stage's watermark goes to late_events instead (counted, not lost); a copy sent again
            # after the original got through is late too, but its id is in the table already.
            (late_only[table],) = one(f"SELECT uniqExact(event_id) FROM late_events WHERE reason = '{LATE_REASON[table]}' "
                                      f"AND event_id NOT IN (SELECT {key} FROM {table})")
            checks.append(Check(f"{table}: no row twice (count() without FINAL = uniqExact)", "clickhouse", rows, ids, rows == ids))
            checks.append(Check(f"{table}: every unique valid event once (or counted late)", "clickhouse", expected,
                                rows + late_only[table], rows + late_only[table] == expected,
                                f"{rows} rows, {late_only[table]} unique events late ({LATE_REASON[table]})"))
            checks.append(Check(f"{table}: {TAKEN_FOR_VALID}", "clickhouse", 0, foreign, foreign == 0, f"rows whose {key} is not of the producer's form"))
        late = dict(client.query("SELECT reason, count() FROM late_events GROUP BY reason").result_rows)
        for table, keys, values, recompute in AGGREGATES:
            actual = f"SELECT toUnixTimestamp(window_start) AS t, {keys.removeprefix('t, ')}, {values} FROM {table}"
            expected_sql = recompute.format(m=_STREAM_MINUTES, poll=max(1, round(settings.twitch_poll_interval_s)))
            cols = ", ".join([keys, *(f"toInt64({v})" for v in values.split(", "))])  # no common type of Int64 and UInt64
            found_rows, expected_rows, extra, missing = one(
                f"SELECT (SELECT count() FROM {table}), (SELECT count() FROM ({expected_sql})), "
                f"(SELECT count() FROM (SELECT {cols} FROM ({actual}) EXCEPT SELECT {cols} FROM ({expected_sql}))), "
                f"(SELECT count() FROM (SELECT {cols} FROM ({expected_sql}) EXCEPT SELECT {cols} FROM ({actual})))")
            examples = ""
            if extra or missing:  # a few of each side, to see what differs
                examples = "; found " + str(client.query(f"SELECT {cols} FROM ({actual}) EXCEPT SELECT {cols} FROM ({expected_sql}) LIMIT 3").result_rows)
                examples += ", recomputed " + str(client.query(f"SELECT {cols} FROM ({expected_sql}) EXCEPT SELECT {cols} FROM ({actual}) LIMIT 3").result_rows)
            checks.append(Check(f"{table}: rows equal to their recomputation from the enriched rows", "clickhouse",
                                expected_rows, found_rows, found_rows == expected_rows and extra == missing == 0,
                                f"{extra} rows differ from the recomputation, {missing} recomputed rows missing{examples}"))
        messages, counted = _chat_messages(settings)
        checks.append(Check("chat_minute_stats: messages equal to the chat_silver rows", "clickhouse", messages, counted, counted == messages,
                            "chat_silver rows not late for their window"))
        checks.append(Check("late events (counted, not lost)", "clickhouse", "-", json.dumps(late, sort_keys=True), True))
    for table, expected in unique.items():
        rows, ids = lake_keys(settings, table, KEY_FORM[table])
        checks.append(Check(f"lake.{table}: every unique valid event once (or counted late)", "iceberg", expected,
                            f"{rows} rows, {ids} distinct", rows == ids and rows + late_only[table] == expected,
                            f"{late_only[table]} unique events late"))
        foreign = lake_keys(settings, table)[0] - rows
        checks.append(Check(f"lake.{table}: {TAKEN_FOR_VALID}", "iceberg", 0, foreign, foreign == 0))
    # The lake's gold tables are written by the same jobs at the same checkpoints as the topics the sink loads: each
    # must equal its ClickHouse table, which the checks above hold to the recomputation (or to chat_silver).
    with clickhouse_client(settings) as client:
        for table in _gold_tables():
            in_clickhouse, in_lake, only_clickhouse, only_lake = lake_against_clickhouse(settings, client, table)
            checks.append(Check(f"lake.{table}: the same rows as in ClickHouse", "iceberg", in_clickhouse, in_lake,
                                only_clickhouse == only_lake == 0,
                                f"{only_clickhouse} rows only in ClickHouse, {only_lake} only in the lake"))
    letters = dead_letters(settings)
    stage_of = {topic: job.name for job in catalog.streaming_jobs() for topic in job.inputs if "dead_letter" in job.outputs}
    for topic, stage in sorted(stage_of.items()):
        sent = summary.get(topic, {}).get("malformed", 0)
        extra = resent_malformed.get(topic, 0)
        got = letters.get(f"{stage}:{topic}", {"records": 0, "distinct": 0})
        ok = got["records"] == got["distinct"] and sent <= got["distinct"] <= sent + extra
        checks.append(Check(f"{topic}: {EVERY_MALFORMED}", "dead_letter",
                            f"{sent}" + (f"..{sent + extra}" if extra else ""), got["distinct"], ok,
                            f"{got['records']} records; up to {extra} malformed events were sent twice by a resumed producer"))
    other = {k: v for k, v in letters.items() if k.split(":", 1)[1] not in stage_of}
    checks.append(Check("no other dead letters (the sink's)", "dead_letter", 0, sum(v["records"] for v in other.values()), not other, json.dumps(other)))
    return checks


# -- the command -------------------------------------------------------------------------------------------------
def register(subparsers) -> None:
    p = subparsers.add_parser("chaos", help="prove exactly-once under random kill -9 of every component (docs/chaos.md)",
                              description="Run a bounded synthetic load through the whole pipeline on a platform of its own while "
                                          "killing -9 every component on a seeded schedule; reconcile every store at the end.")
    p.add_argument("--events", type=int, default=ChaosOptions.events, help="events the producer sends (default %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill schedule and the synthetic world (default: random, printed)")
    p.add_argument("--kills-per-component", type=int, default=ChaosOptions.kills_per_component,
                   help="kills of each component; from 2 on, two of them back to back (default %(default)s)")
    p.add_argument("--duplicates", type=float, default=ChaosOptions.duplicates, help="fraction of duplicate events (default %(default)s)")
    p.add_argument("--malformed", type=float, default=ChaosOptions.malformed, help="fraction of malformed events (default %(default)s)")
    p.add_argument("--rate", type=float, default=ChaosOptions.rate, help="producer cap in events/s, 0 = none (default %(default)s)")
    p.add_argument("--report", type=Path, default=ChaosOptions.report, help="JSON report (default %(default)s)")
    p.add_argument("--run-dir", type=Path, default=None, help="run directory of the chaos platform (default: <run dir>/chaos-<seed>, removed first)")
    p.set_defaults(handler=chaos)


def chaos(settings: Settings, args: argparse.Namespace) -> int:
    import shutil
    import signal

    from twitch_pipeline.errors import ConfigurationError
    from twitch_pipeline.platform.lifecycle import down, isolated

    if args.events < 1000 or args.kills_per_component < 1:
        raise ConfigurationError("--events must be at least 1000 and --kills-per-component at least 1")
    if settings.kafka_bootstrap or settings.flink_rest_url or not settings.clickhouse_embedded:
        raise ConfigurationError("chaos kills the local platform's processes: unset TWITCH_PIPELINE_KAFKA_BOOTSTRAP, "
                                 "TWITCH_PIPELINE_FLINK_REST_URL and TWITCH_PIPELINE_CLICKHOUSE_URL")
    opts = ChaosOptions(events=args.events, seed=args.seed, kills_per_component=args.kills_per_component,
                        duplicates=args.duplicates, malformed=args.malformed, rate=args.rate, report=args.report)
    opts.seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(3), "big")
    run_dir = args.run_dir or settings.run_path / f"chaos-{opts.seed}"
    if run_dir.exists():  # a fresh platform each time: stop what an earlier run may have left, then start clean
        down(isolated(settings, run_dir), echo=lambda _: None)
        shutil.rmtree(run_dir)
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still tears its platform down (Chaos.run's finally)
    report = Chaos(isolated(settings, run_dir), opts, echo=lambda line: print(line, flush=True)).run()
    return 0 if report["passed"] else 1


def _interrupt(*_) -> None:
    raise KeyboardInterrupt
