"""Airflow tests run from `.venv-airflow` (`make airflow-test`), never from the main venv's pytest.

An Airflow home of its own in a temporary directory, its metadata database migrated once per session:
`dag.test()` runs DAGs in-process without scheduler or API server, against that database.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "airflow_dags"

if importlib.util.find_spec("airflow") is None:
    # The main venv's pytest (no Airflow there): these tests belong to `make airflow-test`.
    collect_ignore_glob = ["*.py"]
else:
    # Before anything imports Airflow: it reads its configuration once, at import.
    _HOME = tempfile.mkdtemp(prefix="airflow-test-")
    os.environ.update({
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "TWITCH_PIPELINE_DOTENV": os.devnull,  # the developer's .env must not leak into tests
    })


def pytest_unconfigure(config: pytest.Config) -> None:
    """The Airflow home goes with the session (each run made a new one in /tmp, and none was removed)."""
    if "_HOME" in globals():
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The metadata database, migrated (`dag.test()` needs its tables)."""
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture
def pipeline_env(monkeypatch):
    """Set TWITCH_PIPELINE_* variables for the DAGs' tasks (they read settings when they run)."""

    def apply(values: dict[str, str]) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return apply


@pytest.fixture(scope="session")
def run_dags():
    """The DAGs for `dag.test()` runs, without retries: a failing task fails the run now, not after its retry delays."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    for dag in bag.dags.values():
        for task in dag.tasks:
            task.retries = 0
    return bag.dags
