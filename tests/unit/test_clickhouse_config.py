"""ClickHouse endpoint from settings, migration files and the `sql` table printer (no server)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from connectors.clickhouse import endpoint
from connectors.migrations import MIGRATIONS_DIR, load_migrations
from connectors.sql_script import split_statements
from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import load_settings
from twitch_pipeline.text_table import render_table


def settings(**overrides):
    return dataclasses.replace(load_settings(environ={}, dotenv=None), **overrides)


def test_embedded_endpoint_and_dsn():
    ep = endpoint(settings(clickhouse_port=18123))
    assert (ep.interface, ep.host, ep.port, ep.user, ep.database) == ("http", "127.0.0.1", 18123, "default", "twitch")
    assert ep.dsn() == "http://default@127.0.0.1:18123/twitch"


def test_external_endpoint_uses_tls_and_never_puts_the_password_in_the_dsn():
    ep = endpoint(settings(clickhouse_url="https://ch.example.com:8443/", clickhouse_user="app", clickhouse_password="p@ss", clickhouse_database="prod"))
    assert (ep.secure, ep.host, ep.port, ep.user, ep.password) == (True, "ch.example.com", 8443, "app", "p@ss")
    assert "p@ss" not in ep.dsn() and ep.dsn() == "https://app@ch.example.com:8443/prod"
    assert endpoint(settings(clickhouse_url="http://h", clickhouse_secure=True)).port == 8443


def test_credentials_in_the_url_are_used_when_settings_leave_them_default():
    ep = endpoint(settings(clickhouse_url="http://reader:t%40k@h:8123"))
    assert (ep.user, ep.password) == ("reader", "t@k")
    assert "t@k" not in ep.dsn()


def test_native_protocol_url_is_refused_with_a_hint():
    with pytest.raises(PlatformError, match="HTTP interface"):
        endpoint(settings(clickhouse_url="tcp://h:9000"))


def test_split_statements_respects_quotes_and_comments():
    sql = """
        -- a comment; with a semicolon
        CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory;
        /* block; comment */ INSERT INTO a VALUES ('it\\'s; fine');
        ;
        INSERT INTO b /*+ OPTIONS('k' = 'v;w') */ SELECT 1;
    """
    assert split_statements(sql) == [
        "CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory",
        "INSERT INTO a VALUES ('it\\'s; fine')",
        "INSERT INTO b /*+ OPTIONS('k' = 'v;w') */ SELECT 1",
    ]


def test_shipped_migrations_are_ordered_and_parse():
    migrations = load_migrations(MIGRATIONS_DIR)
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    first = migrations[0]
    assert first.version == 1 and first.statements()[0].startswith("CREATE TABLE IF NOT EXISTS game_streams_enriched")
    seed_columns = ["stream_id", "user_id", "user_login", "user_name", "game_id", "game_name", "stream_type", "title",
                    "viewer_count", "started_at", "language", "is_mature", "tags", "broadcaster_type", "user_description",
                    "user_created_at", "data_retrieved_at"]
    body = first.statements()[0]
    positions = [body.index(f"\n    {c} ") for c in seed_columns + ["event_id"]]
    assert positions == sorted(positions)  # the seed's columns in the seed's order, then event_id


def test_badly_named_or_duplicate_migrations_are_errors(tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1")
    (tmp_path / "001_b.sql").write_text("SELECT 2")
    with pytest.raises(PlatformError, match="share version 1"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "two.sql").write_text("SELECT 2")
    with pytest.raises(PlatformError, match="two.sql is not named"):
        load_migrations(tmp_path)


def test_render_table():
    text = render_table(["id", "name", "at"], [(1, "a", dt.datetime(2024, 1, 2, 3, 4, 5)), (22, None, None), (3, "x" * 80, None)])
    lines = text.splitlines()
    assert lines[0].split() == ["id", "name", "at"]
    assert lines[2].startswith(" 1  a") and "2024-01-02 03:04:05" in lines[2]
    assert lines[3].startswith("22  NULL")
    assert lines[4].endswith("…  NULL") and len(lines[4]) < 80
