"""How the supervisor brings Flink back: a dead TaskManager alone is restarted alone (the JobManager restarts its
jobs from their checkpoints); a dead JobManager takes the cluster down and every job is resumed from its checkpoint."""

from __future__ import annotations

from connectors import catalog
from twitch_pipeline import jobs
from twitch_pipeline.platform import supervisor


class Proc:
    def __init__(self, alive: bool):
        self.alive = alive

    def running(self) -> bool:
        return self.alive


class FakeFlink:
    def __init__(self, jobmanager: bool, taskmanager: bool):
        self.processes = [Proc(jobmanager), Proc(taskmanager)]
        self.calls: list[str] = []

    def stop(self):
        self.calls.append("stop")
        for p in self.processes:
            p.alive = False

    def start(self):
        self.calls.append("start")
        for p in self.processes:
            p.alive = True

    def wait_healthy(self):
        self.calls.append("wait_healthy")


def patch_jobs(monkeypatch, active: set[str]):
    calls: list[tuple] = []
    monkeypatch.setattr(jobs, "find_active", lambda settings, name: {"name": name} if name in active else None)
    monkeypatch.setattr(jobs, "resume_from_latest_checkpoints", lambda settings, names=None: calls.append(("resume", names)))
    monkeypatch.setattr(jobs, "start_all", lambda settings, echo=None: calls.append(("start_all",)))
    return calls


ALL = {job.name for job in catalog.streaming_jobs()}


def test_a_dead_taskmanager_is_restarted_alone_and_the_jobs_are_left_to_the_jobmanager(monkeypatch):
    calls = patch_jobs(monkeypatch, active=ALL)
    flink = FakeFlink(jobmanager=True, taskmanager=False)
    supervisor._restart_flink(None, flink)
    assert flink.calls == ["start", "wait_healthy"] and calls == []


def test_a_job_that_gave_up_while_the_taskmanager_was_away_is_resumed(monkeypatch):
    gave_up = catalog.streaming_jobs()[0].name
    calls = patch_jobs(monkeypatch, active=ALL - {gave_up})
    supervisor._restart_flink(None, FakeFlink(jobmanager=True, taskmanager=False))
    assert calls == [("resume", [gave_up]), ("start_all",)]


def test_a_dead_jobmanager_restarts_the_cluster_and_resumes_every_job(monkeypatch):
    calls = patch_jobs(monkeypatch, active=set())
    flink = FakeFlink(jobmanager=False, taskmanager=True)
    supervisor._restart_flink(None, flink)
    assert flink.calls == ["stop", "start", "wait_healthy"] and calls == [("resume", None), ("start_all",)]
