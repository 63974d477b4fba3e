"""Running a source into Kafka: pacing, heartbeats, live progress, and the final per-topic summary."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from producers.contracts import iso_ms
from producers.faults import FaultPlan
from producers.progress import CHUNK, ProgressMark
from producers.publisher import EVENT_TOPICS, Publisher
from twitch_pipeline.settings import Settings

SYNTHETIC, TWITCH = "synthetic", "twitch"

_LOG = logging.getLogger("producers")


@dataclass
class RunOptions:
    source: str = SYNTHETIC
    rate: float = 0.0  # events/s cap; 0 = none
    events: int | None = None  # bounded run: exactly this many events (unique + duplicates + malformed)
    duplicates: float = 0.0
    malformed: float = 0.0
    seed: int = 1
    start_ms: int | None = None  # simulated start; None = now
    validate: bool | None = None  # None = the producer_validate setting
    progress: Path | None = None  # durable progress mark of a bounded synthetic run: a restart resumes after it


@dataclass
class RunResult:
    summary: dict[str, dict[str, int]]
    undelivered: int
    heartbeat_failures: int
    elapsed_s: float
    max_event_time_ms: int | None
    malformed_kinds: dict[str, int]
    source_report: str = ""  # how the source went (the Helix poller: polls, skips, retries, rate-limit waits)
    source_failed: str = ""  # why the source delivered nothing (every Helix poll failed)

    @property
    def ok(self) -> bool:
        return (self.undelivered == 0 and self.heartbeat_failures == 0 and not self.source_failed
                and not any(s["failed"] for s in self.summary.values()))

    @property
    def sent(self) -> int:
        return sum(s["sent"] for topic, s in self.summary.items() if topic in EVENT_TOPICS)


class Pacer:
    """Keeps the send rate at or below ``rate`` events/s (sleeps only when ahead by a few ms)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.started = time.monotonic()
        self.count = 0

    def wait(self) -> None:
        if not self.interval:
            return
        self.count += 1
        ahead = self.started + self.count * self.interval - time.monotonic()
        if ahead > 0.005:
            time.sleep(ahead)


class Progress:
    """One status line (rewritten in place on a terminal, every 10 s otherwise)."""

    def __init__(self, publisher: Publisher, source: str, out: TextIO | None):
        self.publisher, self.source, self.out = publisher, source, out
        self.tty = bool(out is not None and out.isatty())
        self.every = 1.0 if self.tty else 10.0
        self.started = self.last = time.monotonic()
        self.last_sent = 0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.out is None or (not force and now - self.last < self.every):
            return
        stats = [self.publisher.stats[t] for t in EVENT_TOPICS]
        sent = sum(s.sent for s in stats)
        rate = (sent - self.last_sent) / max(now - self.last, 1e-9)
        self.last, self.last_sent = now, sent
        event_time = self.publisher.max_event_time
        line = (f"{self.source}: {sent:,} sent  {rate:,.0f} ev/s  dup {sum(s.duplicates for s in stats):,}  "
                f"malformed {sum(s.malformed for s in stats):,}  rejected {sum(s.rejected for s in stats):,}  "
                f"failed {sum(s.failed for s in stats):,}  event time {iso_ms(event_time) if event_time else '-'}")
        self.out.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.out.flush()

    def close(self) -> None:
        self.tick(force=True)
        if self.tty and self.out is not None:
            self.out.write("\n")


def make_publisher(settings: Settings, opts: RunOptions, producer_factory=None) -> Publisher:
    fault_rng = random.Random(f"faults:{opts.seed}")  # its own stream: faults never change the world's events
    return Publisher(settings, FaultPlan(fault_rng, opts.events, opts.duplicates, opts.malformed), fault_rng,
                     validate=opts.validate, producer_factory=producer_factory)


def run(settings: Settings, opts: RunOptions, out: TextIO | None = sys.stderr, stop: threading.Event | None = None,
        producer_factory=None) -> RunResult:
    """Run one source into Kafka until interrupted or, with ``opts.events``, until exactly that many were sent."""
    stop = stop or threading.Event()
    mark = _progress_mark(settings, opts)
    if mark is not None and mark.mark.done:  # restarted after it had completed: nothing left to send
        return RunResult(mark.mark.summary or {}, 0, 0, 0.0, None, {})
    publisher = make_publisher(settings, opts, producer_factory)
    progress = Progress(publisher, opts.source, out)
    began = time.monotonic()
    poller = None
    try:
        if opts.source == SYNTHETIC:
            _run_synthetic(settings, opts, publisher, progress, stop, mark)
        elif opts.source == TWITCH:
            poller = asyncio.run(_run_twitch(settings, opts, publisher, progress, stop))
        else:
            raise ValueError(f"unknown source {opts.source!r}: use {SYNTHETIC} or {TWITCH}")
        if opts.events is not None and publisher.max_event_time is not None:
            drain(publisher, publisher.max_event_time, settings.drain_horizon_s)
    finally:
        undelivered = publisher.flush()
        progress.close()
    if mark is not None and publisher.done and not stop.is_set() and undelivered == 0:
        mark.finish(publisher.slots, publisher.summary(), publisher.resent_malformed)
    return RunResult(publisher.summary(), undelivered, publisher.heartbeat_failures, time.monotonic() - began,
                     publisher.max_event_time, dict(publisher.malformed_kinds),
                     source_report=poller.summary() if poller else "",
                     source_failed=poller.failure if poller else "")


def drain(publisher: Publisher, last_event_ms: int, horizon_s: float) -> None:
    """End a bounded run so every event-time window downstream closes: nothing older will follow.

    Two rounds, one and two horizons past the last event. The first closes the enrichment job's windows;
    the second moves its watermark past the first, which releases that heartbeat from the event-time join
    into the enriched output, where it closes the windows of the jobs reading that output.
    """
    for rounds in (1, 2):
        publisher.heartbeats(last_event_ms + rounds * int(horizon_s * 1000))


def _progress_mark(settings: Settings, opts: RunOptions) -> ProgressMark | None:
    """The run's progress mark (``--progress``): only a bounded synthetic run is the same run when restarted."""
    if opts.progress is None:
        return None
    if opts.source != SYNTHETIC or opts.events is None:
        from twitch_pipeline.errors import ConfigurationError

        raise ConfigurationError("--progress needs a bounded synthetic run (--source synthetic --events N): only that is the same run when restarted")
    run = {"events": opts.events, "duplicates": opts.duplicates, "malformed": opts.malformed, "seed": opts.seed,
           "channels": settings.synthetic_channels, "games": settings.synthetic_games, "poll_interval_s": settings.twitch_poll_interval_s}
    if opts.start_ms is not None:
        run["start_ms"] = opts.start_ms
    return ProgressMark(opts.progress, run)


def _run_synthetic(settings: Settings, opts: RunOptions, publisher: Publisher, progress: Progress, stop: threading.Event,
                   mark: ProgressMark | None = None) -> None:
    from producers.synthetic import World

    start_ms = opts.start_ms if opts.start_ms is not None else int(time.time() * 1000)
    # A continuous run's clock starts with start_ms, not once the world is built: building one takes 0.39 s for 23,000
    # channels and 0.66 s for 32,800, and every event of the run was stamped that much before it could be sent.
    wall_start = time.monotonic()
    if mark is not None:
        start_ms = mark.start_ms if mark.start_ms is not None else start_ms
        publisher.replay_until, publisher.resend_windows = mark.begin(start_ms)
    marked = publisher.replay_until
    world = World(opts.seed, start_ms, channels=settings.synthetic_channels, games=settings.synthetic_games,
                  poll_interval_s=settings.twitch_poll_interval_s, state_ttl_s=settings.state_ttl_s)
    realtime = opts.events is None  # a continuous run follows the wall clock; a bounded one runs flat out
    pacer = Pacer(opts.rate)
    heartbeat_every = settings.heartbeat_interval_s
    next_heartbeat = time.monotonic() + heartbeat_every
    for n, (topic, event, event_ms) in enumerate(world.events()):
        if realtime:
            while not stop.is_set():
                sim_now = start_ms + int((time.monotonic() - wall_start) * 1000)
                if sim_now >= event_ms:
                    break
                if time.monotonic() >= next_heartbeat:
                    publisher.heartbeats(sim_now)
                    next_heartbeat = time.monotonic() + heartbeat_every
                publisher.poll()
                progress.tick()
                time.sleep(min((event_ms - sim_now) / 1000, 0.2))
        if stop.is_set():
            return
        if not publisher.replaying:
            pacer.wait()
        if not publisher.publish(topic, event, event_ms):
            return
        if mark is not None and publisher.slots - marked >= CHUNK and not publisher.replaying:
            if not publisher.deliver_all(stop):
                return
            mark.delivered(publisher.slots)
            marked = publisher.slots
        if n % 512 == 0:
            publisher.poll()
            progress.tick()
            if time.monotonic() >= next_heartbeat:
                publisher.heartbeats(event_ms)  # the next event is at or after this time
                next_heartbeat = time.monotonic() + heartbeat_every


async def _run_twitch(settings: Settings, opts: RunOptions, publisher: Publisher, progress: Progress, stop: threading.Event):
    from producers.chat import ChatIngestor, channel_list
    from producers.helix import HelixPoller, connect_helix

    done = asyncio.Event()
    twitch = await connect_helix(settings)
    poller = HelixPoller(twitch, publisher, settings)
    chat = ChatIngestor(settings, publisher) if channel_list(settings) else None
    tasks = [asyncio.create_task(poller.run(done))]
    if chat is not None:
        tasks.append(asyncio.create_task(chat.run(done)))
    try:
        next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
        while not done.is_set():
            if stop.is_set() or publisher.done or (chat is not None and chat.stopped_by_budget.is_set()):
                done.set()
                break
            if any(t.done() for t in tasks):
                break
            publisher.poll()
            progress.tick()
            if time.monotonic() >= next_heartbeat:
                now_ms = int(time.time() * 1000)
                publisher.heartbeats(min(now_ms, poller.polling_since_ms or now_ms) - 1000)
                next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
            await asyncio.sleep(0.2)
    finally:
        done.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await twitch.close()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    if errors:
        raise errors[0]
    return poller


def summary_table(result: RunResult) -> str:
    header = f"{'topic':<22}{'sent':>10}{'unique':>10}{'dups':>8}{'malformed':>11}{'rejected':>10}{'failed':>8}"
    rows = [header]
    for topic, s in result.summary.items():
        rows.append(f"{topic:<22}{s['sent']:>10,}{s['unique']:>10,}{s['duplicates']:>8,}{s['malformed']:>11,}{s['rejected']:>10,}{s['failed']:>8,}")
    rate = result.sent / result.elapsed_s if result.elapsed_s else 0.0
    rows.append(f"{result.sent:,} events in {result.elapsed_s:.1f}s ({rate:,.0f} ev/s)"
                + (f"; {result.undelivered} still undelivered at exit" if result.undelivered else "")
                + (f"; {result.heartbeat_failures} heartbeats failed" if result.heartbeat_failures else ""))
    if result.source_report:
        rows.append(result.source_report)
    return "\n".join(rows)
