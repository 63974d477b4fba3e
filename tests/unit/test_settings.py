"""The settings object: env parsing, fail-fast messages, and docs generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from twitch_pipeline.settings import (
    FIELDS,
    SettingsError,
    env_example,
    env_name,
    load_settings,
    markdown_table,
    redacted,
    to_env,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_environment():
    settings = load_settings(environ={}, dotenv=None)
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.clickhouse_embedded and not settings.twitch_credentials_set


def test_prefixed_variables_are_typed():
    settings = load_settings(environ={"TWITCH_PIPELINE_KAFKA_PORT": "19092", "TWITCH_PIPELINE_CHECKPOINT_INTERVAL_S": "2.5", "TWITCH_PIPELINE_CLICKHOUSE_SECURE": "yes"}, dotenv=None)
    assert (settings.kafka_port, settings.checkpoint_interval_s, settings.clickhouse_secure) == (19092, 2.5, True)


@pytest.mark.parametrize("name, value", [("TWITCH_PIPELINE_KAFKA_PORT", "many"), ("TWITCH_PIPELINE_FLINK_REST_PORT", "70000"), ("TWITCH_PIPELINE_STATE_TTL_S", "-1"), ("TWITCH_PIPELINE_CLICKHOUSE_SECURE", "maybe")])
def test_bad_values_fail_fast_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value}, dotenv=None)


def test_dotenv_is_read_and_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport TWITCH_PIPELINE_KAFKA_PORT=1111\nAPP_ID='seed-id'\nTWITCH_PIPELINE_FLINK_REST_PORT=\"2222\"\n")
    settings = load_settings(environ={"TWITCH_PIPELINE_KAFKA_PORT": "3333"}, dotenv=dotenv)
    assert (settings.kafka_port, settings.flink_rest_port, settings.twitch_client_id) == (3333, 2222, "seed-id")


def test_secrets_are_redacted():
    settings = load_settings(environ={"TWITCH_CLIENT_SECRET": "hunter2", "TWITCH_PIPELINE_CLICKHOUSE_PASSWORD": "pw"}, dotenv=None)
    shown = redacted(settings)
    assert "hunter2" not in str(shown) and "pw" not in shown.values()


def test_settings_round_trip_through_the_environment():
    settings = load_settings(environ={"TWITCH_PIPELINE_KAFKA_PORT": "4444", "TWITCH_PIPELINE_CLICKHOUSE_SECURE": "true"}, dotenv=None)
    env = to_env(settings)
    assert to_env(load_settings(environ=env, dotenv=None)) == env


def test_child_processes_get_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = to_env(load_settings(environ={"TWITCH_PIPELINE_RUN_DIR": ".run"}, dotenv=None))
    assert env["TWITCH_PIPELINE_RUN_DIR"] == str(tmp_path / ".run")


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README settings table is stale: run `twitch-pipeline settings --write`"


def test_env_example_lists_every_setting():
    example = (ROOT / ".env.example").read_text()
    assert example == env_example(), ".env.example is stale: run `twitch-pipeline settings --write`"
    assert all(env_name(f) in example for f in FIELDS)
