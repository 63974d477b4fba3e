"""A bounded run killed mid-way and started again sends every event at least once, and the rest exactly as before."""

from __future__ import annotations

import dataclasses

import pytest

from producers import progress
from producers import run as run_module
from producers.heartbeat import HEARTBEAT_KEY
from producers.progress import read_mark
from producers.run import RunOptions, run
from tests.unit.test_producer import START, FakeProducer, is_broken
from twitch_pipeline.errors import ConfigurationError
from twitch_pipeline.settings import load_settings

OPTIONS = dict(events=6000, duplicates=0.1, malformed=0.05, seed=7)


class Killed(BaseException):
    """kill -9: nothing after it runs (no finally flush reaches Kafka, no mark is written)."""


class DyingProducer(FakeProducer):
    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def produce(self, topic, value=None, key=None, partition=None):
        if len(self.records) == self.after:
            raise Killed()
        super().produce(topic, value, key, partition)

    def flush(self, timeout=0):
        if len(self.records) >= self.after:
            raise Killed()
        return super().flush(timeout)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(progress, "CHUNK", 500)
    monkeypatch.setattr(run_module, "CHUNK", 500)


@pytest.fixture
def settings():
    return dataclasses.replace(load_settings(environ={}, dotenv=None), synthetic_channels=300, synthetic_games=60)


def events(fake: FakeProducer) -> list[tuple[str, bytes]]:
    return [(topic, value) for topic, key, value, _ in fake.records if key != HEARTBEAT_KEY]


def test_a_killed_run_resumes_after_its_mark_and_counts_what_it_may_send_twice(settings, tmp_path):
    whole = FakeProducer()
    expected = run(settings, RunOptions(start_ms=START, **OPTIONS), out=None, producer_factory=whole)

    mark_path = tmp_path / "progress.json"
    opts = RunOptions(start_ms=START, progress=mark_path, **OPTIONS)
    first = DyingProducer(after=2300)
    with pytest.raises(Killed):
        run(settings, opts, out=None, producer_factory=first)
    dead = read_mark(mark_path)
    assert dead is not None and not dead.done and 0 < dead.delivered <= 2300 < dead.intent

    second = FakeProducer()
    resumed = run(settings, RunOptions(progress=mark_path, **OPTIONS), out=None, producer_factory=second)  # start time from the mark
    assert resumed.ok and resumed.summary == expected.summary
    assert events(second) == events(whole)[dead.delivered:]  # the rest, exactly as the whole run sends it
    assert set(events(first)) | set(events(second)) == set(events(whole))  # nothing lost

    done = read_mark(mark_path)
    assert done.done and done.windows == [[dead.delivered, dead.intent]]
    window = events(whole)[dead.delivered:dead.intent]
    sent_before = set(events(first)[dead.delivered:])
    malformed_twice = sum(1 for e in window if e in sent_before and is_broken(*e))
    assert 0 < malformed_twice <= sum(done.resent_malformed.values()) == sum(1 for e in window if is_broken(*e))

    third = FakeProducer()
    again = run(settings, RunOptions(progress=mark_path, **OPTIONS), out=None, producer_factory=third)
    assert again.summary == expected.summary and third.records == []  # a completed run sends nothing more


def test_a_progress_mark_of_another_run_is_refused(settings, tmp_path):
    mark_path = tmp_path / "progress.json"
    run(settings, RunOptions(start_ms=START, progress=mark_path, **OPTIONS), out=None, producer_factory=FakeProducer())
    with pytest.raises(ConfigurationError, match="belongs to another run.*seed was 7, now 8"):
        run(settings, RunOptions(start_ms=START, progress=mark_path, **{**OPTIONS, "seed": 8}), out=None, producer_factory=FakeProducer())


def test_progress_needs_a_bounded_synthetic_run(settings, tmp_path):
    with pytest.raises(ConfigurationError, match="bounded synthetic run"):
        run(settings, RunOptions(progress=tmp_path / "p.json"), out=None, producer_factory=FakeProducer())
