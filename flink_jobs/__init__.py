"""PyFlink SQL/Table jobs. Each job is one driver module with one entry function and SQL in ``sql/``.

Jobs are declared in :mod:`connectors.catalog` under the name their driver gives the pipeline
(``pipeline.name``); `twitch-pipeline start` submits the streaming ones in declaration order.
"""

from __future__ import annotations

from pathlib import Path

from connectors import catalog

JOBS_DIR = Path(__file__).resolve().parent

#: name -> driver module file, for every job of the catalog
JOBS: dict[str, str] = {j.name: j.module.removeprefix("flink_jobs.").replace(".", "/") + ".py" for j in catalog.JOBS}


def job_file(job: str) -> Path:
    """The driver for a registered job name, or ``job`` itself if it is a path to a ``.py`` file."""
    if job in JOBS:
        return JOBS_DIR / JOBS[job]
    path = Path(job)
    if path.suffix == ".py" and path.is_file():
        return path.resolve()
    known = ", ".join(sorted(JOBS)) or "none registered yet"
    raise LookupError(f"unknown job {job!r}: give a registered name ({known}) or a path to a PyFlink driver .py file")
