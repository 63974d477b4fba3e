"""Shared fixtures: settings on free ports in a temporary run directory, and the real local platform.

Integration tests share one session-scoped platform (Kafka, Flink, ClickHouse, Iceberg) started by the
very code `twitch-pipeline up` runs; tests that restart or kill components make their own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Callable, Iterator

import pytest

from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.settings import Settings, load_settings

MakeSettings = Callable[..., Settings]

# The Airflow tests run in Airflow's own virtualenv (`make airflow-test`), never in the main one.
collect_ignore = [] if importlib.util.find_spec("airflow") else ["airflow"]

#: Every test in these folders carries the marker, so `pytest -m "not integration and not e2e"` is the fast tier.
TIER_MARKERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier in TIER_MARKERS and tier not in {m.name for m in item.iter_markers()}:
            item.add_marker(TIER_MARKERS[tier])


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> MakeSettings:
    """Settings for a fresh platform: a new run directory and free ports, plus any overrides."""

    def make(**overrides) -> Settings:
        base = isolated(load_settings(environ={}, dotenv=None), tmp_path_factory.mktemp("run"))
        return dataclasses.replace(base, **{"checkpoint_interval_s": 2.0, **overrides})

    return make


@pytest.fixture(scope="session")
def platform(make_settings: MakeSettings) -> Iterator[Settings]:
    """The whole local platform, up for the test session and down at its end."""
    from twitch_pipeline.platform.lifecycle import down, up

    settings = make_settings()
    try:
        up(settings, echo=lambda _: None)
        yield settings
    finally:
        down(settings, echo=lambda _: None)


@pytest.fixture(scope="session")
def kafka(make_settings: MakeSettings) -> Iterator[Settings]:
    """Just a Kafka broker with the project's topics, shared by the tests that need nothing else."""
    from connectors.topics import ensure_topics

    with running(make_settings(), ["kafka"]) as settings:
        ensure_topics(settings)
        yield settings


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
