"""Where the pieces plug into the platform lifecycle: plain imports, one list each (CLI commands: cli.py).

Every module imported here keeps its heavy imports (PyFlink, Airflow, twitchAPI) inside functions, so the
CLI starts fast and a command never loads what it does not use.
"""

from __future__ import annotations

from typing import Any, Callable

from connectors import migrations, topics
from connectors.sink import cli as sink_cli
from connectors.sink import health as sink_health
from producers import cli as producers_cli
from twitch_pipeline.settings import Settings

#: Run after every component of `up` is healthy, in order; each returns a summary line.
POST_UP_HOOKS: list[Callable[[Settings], str]] = [
    migrations.apply_migrations,  # ClickHouse schema
    topics.ensure_topics,  # Kafka topics of the catalog
]

#: Long-running services that `start`/`run` launch, supervise and `stop` stops: settings -> (name, argv).
SERVICES: list[Callable[[Settings], tuple[str, list[str]]]] = [
    producers_cli.service,  # the continuous producer (synthetic unless Twitch credentials are set)
    sink_cli.service,  # exactly-once Kafka → ClickHouse sink
]

#: Extra health details of a running service for `status`: name -> settings -> dict.
SERVICE_HEALTH: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "sink": sink_health.sink_health,
}
