"""Every DAG imports cleanly, without I/O at import time, and carries tags, an owner and retries."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.airflow.conftest import DAGS

EXPECTED = {"flink_deploy", "aggregates_backfill", "data_quality", "maintenance"}
#: Tasks that deliver a verdict on data: retrying cannot change it.
VERDICTS = {("data_quality", "verdict")}


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED <= set(dagbag.dags)


def test_parsing_does_no_io(monkeypatch):
    """The DAG processor parses the files every few seconds: no network, no subprocess, no settings read."""
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError(f"I/O while parsing DAGs: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr("twitch_pipeline.settings.load_settings", refuse)
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {} and EXPECTED <= set(bag.dags)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_has_tags_owner_retries(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "twitch-pipeline" in dag.tags and len(dag.tags) > 1
    assert dag.doc_md and dag.description
    for task in dag.tasks:
        assert task.owner == "twitch-pipeline", task.task_id
        assert task.retries >= 1 or (dag_id, task.task_id) in VERDICTS, task.task_id
        assert task.execution_timeout is not None, task.task_id
