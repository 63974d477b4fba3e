"""Kafka clients configured from the settings (one place for bootstrap and client defaults)."""

from __future__ import annotations

import logging
from typing import Any

from twitch_pipeline.settings import Settings

# librdkafka logs every refused connection to stderr; route its logs through `logging` instead,
# where they stay quiet unless a user turns the `twitch_pipeline.kafka` logger up.
_LOG = logging.getLogger("twitch_pipeline.kafka")


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, "logger": _LOG, **overrides}


def admin_client(settings: Settings):
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(settings, **{"socket.timeout.ms": 2000}))
