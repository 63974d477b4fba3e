"""What the project's DAGs share: default arguments, settings read at run time, and the two Flink targets.

DAG files import only this module, the catalog and Airflow at parse time: the DAG processor parses them
every few seconds, so everything touching Kafka, Flink, ClickHouse or Iceberg happens inside tasks.
Settings come from the same ``TWITCH_PIPELINE_*`` environment as every other part of the pipeline.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from twitch_pipeline.settings import PROJECT_ROOT, Settings, SettingsError, load_settings

OWNER = "twitch-pipeline"
TAGS = ["twitch-pipeline"]
TARGETS = ("local", "kubernetes")

#: Airflow connection of the Kubernetes API (kubeconfig path or in-cluster), shared by every Kubernetes task.
KUBERNETES_CONN_ID = "kubernetes_default"

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
}

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def settings() -> Settings:
    """The pipeline's settings, read when a task runs (never when the DAG file is parsed)."""
    loaded = load_settings(dotenv=Path(os.environ.get("TWITCH_PIPELINE_DOTENV", PROJECT_ROOT / ".env")))
    flink_target(loaded)
    return loaded


def flink_target(settings: Settings) -> str:
    if settings.airflow_flink_target not in TARGETS:
        raise SettingsError(f"TWITCH_PIPELINE_AIRFLOW_FLINK_TARGET={settings.airflow_flink_target!r} must be one of {', '.join(TARGETS)}")
    return settings.airflow_flink_target
