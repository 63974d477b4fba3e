"""Where later pieces plug into the CLI and the platform lifecycle.

Each entry is ``"module:attribute"`` and is imported only when used, so the CLI starts fast and a
piece that needs PyFlink or Airflow never loads for commands that do not use it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Run after every component of `up` is healthy, in order: callable(settings) -> summary line.
POST_UP_HOOKS: list[str] = [
    "connectors.migrations:apply_migrations",  # ClickHouse schema (issue 3)
    "connectors.topics:ensure_topics",  # Kafka topics (issue 4)
]

#: Modules exposing ``register(subparsers)`` that add CLI subcommands.
COMMAND_MODULES: list[str] = [
    "twitch_pipeline.sql_command",  # `twitch-pipeline sql` (issue 3)
    "producers.cli",  # `twitch-pipeline produce` (issue 4)
    "connectors.sink.cli",  # `twitch-pipeline sink` (issue 6)
    "twitch_pipeline.check_command",  # `twitch-pipeline check`: data quality (issues 10, 12)
    "twitch_pipeline.k8s_manifests",  # `twitch-pipeline k8s render` (issue 13)
]

#: Long-running connectors that `start` launches and `stop` stops: callable(settings) -> ManagedProcess spec.
SERVICES: list[str] = [
    "connectors.sink.cli:service",  # exactly-once Kafka → ClickHouse sink (issue 6)
]

#: Extra health details of a running service for `status`: name -> callable(settings) -> dict.
SERVICE_HEALTH: dict[str, str] = {
    "sink": "connectors.sink.health:sink_health",
}


def resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded
