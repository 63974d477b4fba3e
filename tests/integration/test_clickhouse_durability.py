"""The embedded server's process life: committed inserts survive restart and kill -9; SIGTERM is graceful;
a configured password is enforced. (Embedded only: an external server's life is not ours to test.)"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Iterator

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from connectors.clickhouse import clickhouse_client
from twitch_pipeline.platform.clickhouse import ClickHouse

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("TWITCH_PIPELINE_CLICKHOUSE_URL")), reason="tests the embedded server's process"),
]


@pytest.fixture
def embedded(make_settings) -> Iterator[ClickHouse]:
    clickhouse = ClickHouse(make_settings(clickhouse_database="default"))
    clickhouse.start()
    try:
        clickhouse.wait_healthy()
        yield clickhouse
    finally:
        clickhouse.stop()


def insert_batch(clickhouse: ClickHouse, first: int, count: int) -> None:
    with clickhouse_client(clickhouse.settings) as c:
        c.command("CREATE TABLE IF NOT EXISTS kept (id UInt32, note String) ENGINE = MergeTree ORDER BY id")
        c.insert("kept", [[i, f"n{i}"] for i in range(first, first + count)], column_names=["id", "note"])


def count_rows(clickhouse: ClickHouse) -> tuple[int, int]:
    with clickhouse_client(clickhouse.settings) as c:
        return c.query("SELECT count(), uniqExact(id) FROM kept").result_rows[0]


def test_inserts_survive_restart_and_kill_minus_9(embedded):
    insert_batch(embedded, 0, 1000)
    assert embedded.stop() == []  # SIGTERM was enough: a graceful shutdown
    embedded.start()
    embedded.wait_healthy()
    assert count_rows(embedded) == (1000, 1000)

    insert_batch(embedded, 1000, 500)  # acknowledged, then the process dies without any warning
    embedded.kill()
    assert not embedded.running()
    embedded.start()
    embedded.wait_healthy()
    assert count_rows(embedded) == (1500, 1500)
    insert_batch(embedded, 1500, 1)  # and it keeps working on the recovered directory
    assert count_rows(embedded) == (1501, 1501)


def test_second_server_on_same_directory_fails_clearly(embedded):
    from twitch_pipeline.platform.process import free_port

    twin = subprocess.run(
        [sys.executable, "-m", "twitch_pipeline.clickhouse_server", "--data-dir", str(embedded.run_dir / "clickhouse"),
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )
    assert twin.returncode == 1
    assert "cannot open chDB data directory" in twin.stderr and "Traceback" not in twin.stderr
    with clickhouse_client(embedded.settings) as c:  # the owner is unharmed
        assert c.command("SELECT 1") == 1


def test_password_is_enforced(make_settings):
    clickhouse = ClickHouse(make_settings(clickhouse_database="default", clickhouse_password="s3cret"))
    clickhouse.start()
    try:
        clickhouse.wait_healthy()
        assert "s3cret" not in clickhouse.health()["url"]
        with clickhouse_client(clickhouse.settings) as c:
            assert c.command("SELECT 1") == 1
        import dataclasses

        wrong = dataclasses.replace(clickhouse.settings, clickhouse_password="nope")
        with pytest.raises(DatabaseError) as err:
            clickhouse_client(wrong)
        assert err.value.code == 516
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(clickhouse.settings.clickhouse_http_url + "/?query=SELECT%201", timeout=10)
        assert http_err.value.code == 403
        basic = urllib.request.Request(  # how Grafana's data source sends credentials
            clickhouse.settings.clickhouse_http_url + "/?default_format=JSONEachRow", data=b"SELECT 1 AS one",
            headers={"Authorization": "Basic " + base64.b64encode(b"default:s3cret").decode()})
        with urllib.request.urlopen(basic, timeout=10) as resp:
            assert resp.read() == b'{"one":1}\n'
    finally:
        clickhouse.stop()
