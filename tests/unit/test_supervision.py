"""Back-off, state logging and the supervisor's restart policy, with fake parts and a fake clock."""

from __future__ import annotations

import json
import random
import threading

from twitch_pipeline.errors import Backoff, StateLog, wait_until
from twitch_pipeline.platform.supervisor import STABLE_S, Chore, Supervised, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Part:
    """A fake service: dies when told, and whose restarts may fail a given number of times."""

    def __init__(self, name: str, failing_restarts: int = 0):
        self.name, self.up, self.failing_restarts, self.restarts = name, True, failing_restarts, 0

    def restart(self) -> None:
        self.restarts += 1
        if self.failing_restarts:
            self.failing_restarts -= 1
            raise RuntimeError("port still in use")
        self.up = True

    def supervised(self) -> Supervised:
        return Supervised(self.name, lambda: self.up, self.restart, lambda: "killed by signal 9")


def test_backoff_grows_exponentially_within_its_cap_and_resets():
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps))
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_backoff_wait_ends_at_once_on_a_stop_request():
    stop = threading.Event()
    stop.set()
    assert Backoff(initial_s=60.0).wait(stop) is False  # returns immediately, not after a minute


def test_state_log_says_each_change_once_and_persists_it(tmp_path):
    said: list[str] = []
    path = tmp_path / "state" / "sink.json"
    log = StateLog(said.append, path=path)
    for _ in range(20):
        log.failing("Kafka at 127.0.0.1:9092", "Connection refused")
    assert len(said) == 1 and "Kafka at 127.0.0.1:9092 unavailable" in said[0]
    assert json.loads(path.read_text())["state"] == "waiting for Kafka at 127.0.0.1:9092"
    log.ok()
    log.ok()
    assert len(said) == 2 and "is back" in said[1]
    assert json.loads(path.read_text())["state"] == "ok"


def test_a_dead_part_is_restarted_and_counted(tmp_path):
    clock, part, echoes = Clock(), Part("sink"), []
    sup = Supervisor([part.supervised()], tmp_path / "supervisor.json", clock=clock, echo=echoes.append)
    sup.tick()
    assert part.restarts == 0
    part.up = False
    sup.tick()
    assert part.up and part.restarts == 1
    report = json.loads((tmp_path / "supervisor.json").read_text())["sink"]
    assert report["restarts"] == 1 and report["last_error"] == "killed by signal 9"
    assert any("sink is down" in e for e in echoes)


def test_failed_restarts_back_off_and_stable_parts_reset_the_back_off():
    clock, part = Clock(), Part("kafka", failing_restarts=3)
    sup = Supervisor([part.supervised()], clock=clock, echo=lambda _: None)
    part.up = False
    attempts_at = []
    for _ in range(400):  # 400 s of ticks, one a second
        before = part.restarts
        sup.tick()
        if part.restarts > before:
            attempts_at.append(clock.now)
        clock.now += 1.0
    gaps = [b - a for a, b in zip(attempts_at, attempts_at[1:])]
    assert len(attempts_at) == 4 and part.up  # three failures, then success
    assert gaps[0] <= gaps[-1]  # waits grow
    assert "restart failed" in sup.report()["kafka"]["last_error"]
    # after a stable period the next death is retried at once again
    clock.now += STABLE_S
    sup.tick()
    part.up = False
    sup.tick()
    assert part.up and part.restarts == 5


def test_a_probe_that_raises_counts_as_dead():
    calls = []

    def alive() -> bool:
        raise OSError("no /proc entry")

    sup = Supervisor([Supervised("producer", alive, lambda: calls.append(1))], echo=lambda _: None)
    sup.tick()
    assert calls == [1]


def test_state_log_follows_a_change_of_culprit():
    said: list[str] = []
    log = StateLog(said.append)
    log.failing("Kafka at k:9092", "down")
    log.failing("ClickHouse at http://c:8123", "refused")
    log.failing("ClickHouse at http://c:8123", "refused")
    assert log.state == "waiting for ClickHouse at http://c:8123" and len(said) == 2


def test_last_words_name_the_error_or_say_there_was_none(tmp_path):
    from twitch_pipeline.platform.process import ManagedProcess
    from twitch_pipeline.platform.supervisor import last_words

    crashed, killed = ManagedProcess("sink", tmp_path), ManagedProcess("producer", tmp_path)
    crashed.log_file.parent.mkdir(parents=True)
    crashed.log_file.write_text("INFO sink started\nERROR sink failed: table gone\nINFO flushing\n")
    killed.log_file.write_text("INFO sent 500 events\n")
    assert last_words([crashed, killed]) == "sink: ERROR sink failed: table gone; producer: exited with no error in its log (killed?)"


def test_a_slow_restart_does_not_hold_up_the_others():
    """Found by `twitch-pipeline chaos`: a killed producer stayed down while Flink resubmitted its jobs."""
    release = threading.Event()
    slow_calls, fast = [], Part("producer")
    flink_up = [False]

    def slow_restart() -> None:
        slow_calls.append(1)
        release.wait(10)
        flink_up[0] = True

    sup = Supervisor([Supervised("flink", lambda: flink_up[0], slow_restart), fast.supervised()], echo=lambda _: None, concurrent=True)
    fast.up = False
    sup.tick()
    wait_until(lambda: fast.up, 5, "the producer restarted while Flink's restart is still under way")
    sup.tick()
    assert slow_calls == [1] and sup.records["flink"].restarting  # not restarted a second time meanwhile
    release.set()
    wait_until(lambda: not sup.records["flink"].restarting, 5, "Flink's restart to finish")
    sup.tick()
    assert flink_up[0] and slow_calls == [1] and sup.report()["flink"]["restarts"] == 1


def test_a_chore_runs_every_interval_from_one_interval_after_the_start_and_a_failure_is_on_record(tmp_path):
    clock, outcomes, said = Clock(), [RuntimeError("catalog locked"), "3 snapshots expired"], []

    def work() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    chore = Chore("iceberg", "snapshot_expiry", 300.0, work)
    sup = Supervisor([], tmp_path / "supervisor.json", clock=clock, echo=said.append, chores=[chore])
    sup.tick()
    assert outcomes[0].args == ("catalog locked",), "not at the start: the platform is busy starting"
    clock.now += 300
    sup.tick()
    report = json.loads((tmp_path / "supervisor.json").read_text())
    assert report["iceberg"]["last_error"] == "snapshot_expiry failed: catalog locked" and said == ["iceberg: snapshot_expiry failed: catalog locked"]
    clock.now += 299
    sup.tick()
    assert len(outcomes) == 1, "the next turn, not at once"
    clock.now += 1
    sup.tick()
    report = json.loads((tmp_path / "supervisor.json").read_text())
    assert report["iceberg"]["snapshot_expiry"].startswith("3 snapshots expired (") and "last_error" not in report["iceberg"]
