"""PyFlink SQL/Table jobs. Each job is one driver module with one entry function and SQL in ``sql/``.

Register a job here under the name its driver gives the pipeline (``pipeline.name``); streaming jobs
listed in :data:`STREAMING_JOBS` are submitted by `twitch-pipeline start`, in that order.
"""

from __future__ import annotations

from pathlib import Path

JOBS_DIR = Path(__file__).resolve().parent

#: name -> driver module file (relative to this package)
JOBS: dict[str, str] = {
    "enrich_streams": "enrich.py",
    "aggregate_streams": "aggregate.py",
}

#: the jobs `twitch-pipeline start` keeps running
STREAMING_JOBS: list[str] = ["enrich_streams", "aggregate_streams"]


def job_file(job: str) -> Path:
    """The driver for a registered job name, or ``job`` itself if it is a path to a ``.py`` file."""
    if job in JOBS:
        return JOBS_DIR / JOBS[job]
    path = Path(job)
    if path.suffix == ".py" and path.is_file():
        return path.resolve()
    known = ", ".join(sorted(JOBS)) or "none registered yet"
    raise LookupError(f"unknown job {job!r}: give a registered name ({known}) or a path to a PyFlink driver .py file")
