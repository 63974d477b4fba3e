"""After a cluster crash each streaming job resumes from its latest checkpoint — or, killed again before taking
one, from what it had itself resumed from: never from nothing (what `twitch-pipeline chaos`'s two JobManager kills
in a row exercise)."""

from __future__ import annotations

import dataclasses

from connectors import catalog
from twitch_pipeline import jobs
from twitch_pipeline.settings import load_settings

JOB = catalog.streaming_jobs()[0].name


def settings_in(tmp_path):
    return dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=tmp_path)


def checkpoint(settings, job_id: str, n: int, complete: bool = True):
    path = settings.run_path / "flink" / "checkpoints" / job_id / f"chk-{n}"
    path.mkdir(parents=True)
    if complete:
        (path / "_metadata").write_bytes(b"meta")
    return path.as_uri()


def pointer(settings) -> str | None:
    path = settings.run_path / "flink" / "resume" / f"{JOB}.latest"
    return path.read_text() if path.exists() else None


def test_a_job_resumes_from_its_latest_complete_checkpoint(tmp_path):
    settings = settings_in(tmp_path)
    jobs.submitted(settings, JOB, "a" * 32, None)
    checkpoint(settings, "a" * 32, 4)
    latest = checkpoint(settings, "a" * 32, 5)
    checkpoint(settings, "a" * 32, 6, complete=False)  # in progress when the cluster died
    jobs.resume_from_latest_checkpoints(settings)
    assert pointer(settings) == latest


def test_a_job_killed_before_its_first_checkpoint_resumes_from_where_it_started(tmp_path):
    settings = settings_in(tmp_path)
    jobs.submitted(settings, JOB, "a" * 32, None)
    first = checkpoint(settings, "a" * 32, 5)
    jobs.resume_from_latest_checkpoints(settings)
    jobs.submitted(settings, JOB, "b" * 32, pointer(settings))  # the restart resubmits it from chk-5 …
    checkpoint(settings, "b" * 32, 6, complete=False)  # … and the cluster dies again during its first checkpoint
    jobs.resume_from_latest_checkpoints(settings)
    assert pointer(settings) == first

    jobs.submitted(settings, JOB, "c" * 32, pointer(settings))
    own = checkpoint(settings, "c" * 32, 7)
    jobs.resume_from_latest_checkpoints(settings)
    assert pointer(settings) == own  # once it has a checkpoint of its own, that one


def test_a_job_started_empty_has_nothing_to_resume_from(tmp_path):
    settings = settings_in(tmp_path)
    jobs.submitted(settings, JOB, "a" * 32, "file:///old/chk-1")
    jobs.submitted(settings, JOB, "b" * 32, None)  # submitted --fresh afterwards
    jobs.resume_from_latest_checkpoints(settings)
    assert pointer(settings) is None
