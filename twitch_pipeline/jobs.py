"""Submitting, listing, cancelling and savepoint-stopping Flink jobs.

Submission goes through Flink's own CLI (`flink run -py`), exactly as a user submits to any Flink
cluster; everything else uses the JobManager's REST API. A job is addressed by its name: each
driver sets ``pipeline.name`` to the name it is registered under in :mod:`flink_jobs`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors import catalog
from flink_jobs import job_file
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.platform.flink import Flink, flink_cli, flink_cli_env
from twitch_pipeline.settings import Settings

ACTIVE = {"INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "RECONCILING", "FAILING", "CANCELLING"}


def _cluster(settings: Settings) -> Flink:
    flink = Flink(settings)
    if not flink.health().get("healthy"):
        raise PlatformError(f"no healthy Flink cluster at {settings.flink_rest}: run `twitch-pipeline up` first")
    return flink


def list_jobs(settings: Settings) -> list[dict[str, Any]]:
    jobs = _cluster(settings).rest("/jobs/overview")["jobs"]
    return sorted(({"id": j["jid"], "name": j["name"], "state": j["state"], "start_time": j["start-time"]} for j in jobs), key=lambda j: -j["start_time"])


def find_active(settings: Settings, name: str) -> dict[str, Any] | None:
    return next((j for j in list_jobs(settings) if j["name"] == name and j["state"] in ACTIVE), None)


def _savepoint_pointer(settings: Settings, name: str) -> Path:
    """The file naming the savepoint (or retained checkpoint) the next `submit` of ``name`` resumes from."""
    return settings.run_path / "flink" / "resume" / f"{name}.latest"


def _job_id_file(settings: Settings, name: str) -> Path:
    return settings.run_path / "flink" / "resume" / f"{name}.job-id"


def _resumed_from_file(settings: Settings, name: str) -> Path:
    """The savepoint or checkpoint the running job of ``name`` was started from (absent: started empty)."""
    return settings.run_path / "flink" / "resume" / f"{name}.resumed-from"


def latest_checkpoint(settings: Settings, job_id: str) -> str | None:
    """The newest completed checkpoint of a job (a ``chk-N`` directory holding ``_metadata``), if local."""
    root = urlsplit(settings.checkpoint_uri)
    if root.scheme not in ("", "file"):
        return None  # object storage: the cluster's own HA restores its jobs there
    done = [p for p in (Path(root.path) / job_id).glob("chk-*") if (p / "_metadata").is_file()]
    return max(done, key=lambda p: int(p.name.removeprefix("chk-"))).as_uri() if done else None


def resume_from_latest_checkpoints(settings: Settings, names: list[str] | None = None) -> None:
    """After the cluster lost its jobs (a JobManager restart without HA), let the next `submit` of each
    streaming job (or of those in ``names``) resume from its latest completed checkpoint: its state and Kafka
    transactions go on from there, so the restart loses and duplicates nothing."""
    for job in catalog.streaming_jobs():
        if names is not None and job.name not in names:
            continue
        id_file = _job_id_file(settings, job.name)
        if id_file.exists() and not _savepoint_pointer(settings, job.name).exists():
            # A job killed before its first checkpoint (a second crash right after a restart) has none of its
            # own: it goes on from where it started, never from nothing (that would drop its state and re-read
            # from committed offsets: lost windows, duplicates past the dedup state).
            resumed_from = _resumed_from_file(settings, job.name)
            checkpoint = latest_checkpoint(settings, id_file.read_text().strip()) or (resumed_from.read_text().strip() if resumed_from.exists() else None)
            if checkpoint:
                _savepoint_pointer(settings, job.name).write_text(checkpoint)


def submit(settings: Settings, job: str, args: list[str] | None = None, resume: bool = True) -> str:
    """Run `flink run -py <driver>`; returns the job id Flink printed.

    ``job`` is a registered job name or a path to a driver file. A streaming job already running under
    the same name is not submitted twice. A savepoint left by `stop` is resumed and then forgotten.
    """
    path = job_file(job)
    name = job if not job.endswith(".py") else path.stem
    flink = _cluster(settings)
    flink.prepare()
    if (active := find_active(settings, name)) is not None:
        return active["id"]
    cmd = [*flink_cli(settings), "run"]
    pointer = _savepoint_pointer(settings, name)
    resumed_from = pointer.read_text().strip() if resume and pointer.exists() else None
    if resumed_from:
        cmd += ["--fromSavepoint", resumed_from, "--allowNonRestoredState"]
    cmd += ["--python", str(path), *(args or [])]
    proc = subprocess.run(cmd, env=flink_cli_env(settings), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    log = settings.run_path / "logs" / f"submit-{name}.log"
    log.write_text(out)
    if proc.returncode != 0:
        reason = _failure_reason(out)
        raise PlatformError(f"submitting {name} failed: {reason} (full output: {log})")
    job_id = next((line.rsplit(" ", 1)[-1].strip() for line in out.splitlines() if "JobID" in line), "")
    submitted(settings, name, job_id, resumed_from)
    return job_id


def submitted(settings: Settings, name: str, job_id: str, resumed_from: str | None) -> None:
    """Bookkeeping after a successful submit: the savepoint pointer is used up; the job's id and what it
    resumed from are kept, for :func:`resume_from_latest_checkpoints` after a crash."""
    _savepoint_pointer(settings, name).unlink(missing_ok=True)
    _job_id_file(settings, name).parent.mkdir(parents=True, exist_ok=True)
    if job_id:
        _job_id_file(settings, name).write_text(job_id)
    if resumed_from:
        _resumed_from_file(settings, name).write_text(resumed_from)
    else:
        _resumed_from_file(settings, name).unlink(missing_ok=True)


def _failure_reason(output: str) -> str:
    """The most telling line of a failed `flink run`: the deepest cause, not the Python-exit wrapper."""
    causes = [line.strip().removeprefix("Caused by: ") for line in output.splitlines() if line.startswith(("Caused by:", "pyflink."))]
    causes = [c for c in causes if "Python process exits" not in c and "JobExecutionException" not in c]
    return causes[-1][:400] if causes else "see the log"


def cancel(settings: Settings, name: str) -> str:
    job = find_active(settings, name) or next((j for j in list_jobs(settings) if j["id"] == name and j["state"] in ACTIVE), None)
    if job is None:
        raise PlatformError(f"no running job named {name}; `twitch-pipeline jobs` lists them")
    _cluster(settings).rest(f"/jobs/{job['id']}?mode=cancel", method="PATCH")
    return job["id"]


def stop_with_savepoint(settings: Settings, name: str, timeout_s: float = 120) -> str | None:
    """Stop a job with a savepoint the next `start` resumes from; returns its location."""
    job = find_active(settings, name)
    if job is None:
        return None
    flink = _cluster(settings)
    target = f"{settings.savepoint_uri.rstrip('/')}/{name}"
    trigger = flink.rest(f"/jobs/{job['id']}/stop", method="POST", body={"targetDirectory": target, "drain": False})["request-id"]
    result: dict[str, Any] = {}

    def done() -> bool:
        result.update(flink.rest(f"/jobs/{job['id']}/savepoints/{trigger}"))
        return result["status"]["id"] == "COMPLETED"

    wait_until(done, timeout_s, f"savepoint of {name}")
    operation = result.get("operation", {})
    if "location" not in operation:
        raise PlatformError(f"savepoint of {name} failed: {operation.get('failure-cause', {}).get('stack-trace', '?').splitlines()[0]}")
    _savepoint_pointer(settings, name).parent.mkdir(parents=True, exist_ok=True)
    _savepoint_pointer(settings, name).write_text(operation["location"])
    return operation["location"]


def start_all(settings: Settings, echo=print) -> None:
    for name in (j.name for j in catalog.streaming_jobs()):
        began = time.monotonic()
        job_id = submit(settings, name)
        echo(f"  {name:<24} running  {job_id}  ({time.monotonic() - began:.0f}s)")


def stop_all(settings: Settings, echo=print) -> None:
    """Stop every streaming job with a savepoint; one that cannot take its savepoint does not keep the others
    running (it is reported at the end, still running, so no state is thrown away)."""
    failures = []
    for name in (j.name for j in reversed(catalog.streaming_jobs())):
        try:
            location = stop_with_savepoint(settings, name)
        except PlatformError as err:
            failures.append(str(err))
            continue
        if location:
            echo(f"  {name:<24} stopped, savepoint {location}")
    if failures:
        raise PlatformError("; ".join(failures))
