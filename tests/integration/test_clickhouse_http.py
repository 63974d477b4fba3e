"""clickhouse-connect (and plain HTTP) against the ClickHouse the project is configured for.

By default that is the embedded chDB server, started once for this module on a free port in a temp
run directory. With ``TWITCH_PIPELINE_CLICKHOUSE_URL`` (and user/password) set, the very same tests
run against that external ClickHouse instead — the proof that code written against the embedded
server behaves the same on a real one. Every test works in its own throw-away database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Iterator

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from connectors.clickhouse import clickhouse_client, endpoint
from connectors.migrations import MIGRATIONS_DIR, apply_migrations, load_migrations
from tests.cli import run_cli
from twitch_pipeline.platform.clickhouse import ClickHouse
from twitch_pipeline.settings import Settings, load_settings

pytestmark = pytest.mark.integration

EXTERNAL = bool(os.environ.get("TWITCH_PIPELINE_CLICKHOUSE_URL"))
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def server(make_settings) -> Iterator[Settings]:
    """Settings pointing at a running ClickHouse: external if configured, else a fresh embedded server."""
    if EXTERNAL:
        yield load_settings()
        return
    settings = make_settings()
    clickhouse = ClickHouse(settings)
    clickhouse.start()
    try:
        clickhouse.wait_healthy()
        yield settings
    finally:
        clickhouse.stop()


@pytest.fixture
def settings(server: Settings) -> Iterator[Settings]:
    """The server's settings with a database of this test's own (dropped afterwards)."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    with clickhouse_client(server, database="") as admin:
        admin.command(f"CREATE DATABASE {database}")
    try:
        yield dataclasses.replace(server, clickhouse_database=database)
    finally:
        with clickhouse_client(server, database="") as admin:
            admin.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def client(settings: Settings):
    with clickhouse_client(settings) as c:
        yield c


def http(settings: Settings, query: str | None = None, body: bytes = b"", headers: dict | None = None, **params: str):
    """One raw HTTP request, as Grafana or curl would send it: (status, headers, body)."""
    ep = endpoint(settings)
    params = {"database": ep.database, **params}
    if query is not None:
        params["query"] = query
    url = f"{ep.interface}://{ep.host}:{ep.port}/?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, data=body or None, method="POST" if body else "GET",
                                     headers={"X-ClickHouse-User": ep.user, "X-ClickHouse-Key": ep.password, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


# -- connecting and health ------------------------------------------------------------------------------
def test_ping_and_status_dsn(server):
    ep = endpoint(server)
    with urllib.request.urlopen(f"{ep.interface}://{ep.host}:{ep.port}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
    health = ClickHouse(dataclasses.replace(server, clickhouse_database="system")).health()
    assert health["healthy"] is True
    assert ep.password == "" or ep.password not in health["url"]
    import clickhouse_connect

    with clickhouse_connect.get_client(dsn=health["url"], password=ep.password) as c:  # the DSN works as is
        assert c.command("SELECT currentDatabase()") == "system"


def test_client_connect_sees_version_and_timezone(client):
    assert client.server_version.split(".")[0].isdigit()
    assert client.command("SELECT 42") == 42


# -- output formats --------------------------------------------------------------------------------------
@pytest.fixture
def sample(client):
    client.command("CREATE TABLE sample (id UInt32, name String, score Nullable(Float64)) ENGINE = MergeTree ORDER BY id")
    client.insert("sample", [[1, "a", 1.5], [2, "b", None], [3, "c\td", 3.0]], column_names=["id", "name", "score"])
    return "sample"


def test_query_native_through_client(client, sample):
    result = client.query("SELECT id, name, score FROM sample ORDER BY id")
    assert result.result_rows == [(1, "a", 1.5), (2, "b", None), (3, "c\td", 3.0)]
    assert result.column_names == ("id", "name", "score")


def test_query_formats_raw(client, sample):
    tsv = client.raw_query("SELECT id, name FROM sample ORDER BY id", fmt="TabSeparated")
    assert tsv == b"1\ta\n2\tb\n3\tc\\td\n"
    each = client.raw_query("SELECT id, score FROM sample ORDER BY id", fmt="JSONEachRow").decode().splitlines()
    assert [json.loads(line) for line in each] == [{"id": 1, "score": 1.5}, {"id": 2, "score": None}, {"id": 3, "score": 3}]
    doc = json.loads(client.raw_query("SELECT id, name FROM sample ORDER BY id", fmt="JSON"))
    assert doc["rows"] == 3 and doc["data"][0] == {"id": 1, "name": "a"}
    assert [m["type"] for m in doc["meta"]] == ["UInt32", "String"]
    rb = client.raw_query("SELECT id, name FROM sample WHERE id = 1", fmt="RowBinaryWithNamesAndTypes")
    assert rb == b"\x02\x02id\x04name\x06UInt32\x06String" + (1).to_bytes(4, "little") + b"\x01a"


def test_format_in_url_query_and_default_format(settings, sample):
    status, headers, body = http(settings, "SELECT id FROM sample ORDER BY id FORMAT CSV")
    assert (status, body) == (200, b"1\n2\n3\n")
    assert headers["X-ClickHouse-Format"] == "CSV"
    status, headers, body = http(settings, body=b"SELECT name FROM sample WHERE id = 2", default_format="JSONEachRow")
    assert (status, body) == (200, b'{"name":"b"}\n')
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers["Content-Type"].startswith("application/json")


def test_response_headers(settings, sample):
    status, headers, _ = http(settings, "SELECT sum(id) FROM sample", query_id="my-query-1")
    assert status == 200
    assert headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert int(summary["read_rows"]) == 3 and int(summary["result_rows"]) == 1


def test_compressed_response_when_accepted(settings, sample):
    import gzip

    status, headers, body = http(settings, "SELECT id FROM sample ORDER BY id", headers={"Accept-Encoding": "gzip"}, enable_http_compression="1")
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"1\n2\n3\n"


# -- inserts ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, "lz4", "zstd", "gzip", False])
def test_native_insert_with_each_compression(settings, compress):
    with clickhouse_client(settings, compress=compress) as c:
        c.command("CREATE TABLE t (id UInt64, v String) ENGINE = MergeTree ORDER BY id")
        summary = c.insert("t", [[i, f"v{i}"] for i in range(5000)], column_names=["id", "v"])
        assert summary.written_rows == 5000
        assert c.query("SELECT count(), sum(id), max(v) FROM t").result_rows == [(5000, 5000 * 4999 // 2, "v999")]


def test_rowbinary_and_jsoneachrow_inserts(client):
    client.command("CREATE TABLE t (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    row_binary = b"".join(i.to_bytes(4, "little") + bytes([len(n)]) + n.encode() for i, n in [(1, "one"), (2, "two")])
    client.raw_insert("t", ["id", "name"], row_binary, fmt="RowBinary")
    client.raw_insert("t", ["id", "name"], b'{"id": 3, "name": "three"}\n{"id": 4, "name": "four"}\n', fmt="JSONEachRow")
    client.command("INSERT INTO t VALUES (5, 'five')")
    assert client.query("SELECT id, name FROM t ORDER BY id").result_rows == [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five")]


def test_insert_with_query_in_url_and_data_in_body(settings):
    assert http(settings, body=b"CREATE TABLE t (id UInt32, name String) ENGINE = MergeTree ORDER BY id")[0] == 200
    status, headers, _ = http(settings, "INSERT INTO t FORMAT TabSeparated", body=b"1\tone\n2\ttwo\n")
    assert status == 200 and json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    status, _, _ = http(settings, body=b"INSERT INTO t FORMAT CSV\n3,three\n")  # statement and data both in the body
    assert status == 200
    assert http(settings, "SELECT name FROM t ORDER BY id")[2] == b"one\ntwo\nthree\n"


def test_project_types_round_trip(client):
    client.command("""
        CREATE TABLE typed (
            id UInt32, maybe Nullable(String), at DateTime('UTC'), at_berlin DateTime64(3, 'Europe/Berlin'),
            at_utc DateTime64(3, 'UTC'), flag Bool, kind LowCardinality(String), tags Array(String),
            counts Map(String, UInt32), price Decimal(10, 2)
        ) ENGINE = MergeTree ORDER BY id""")
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    rows = [
        [1, None, moment.replace(microsecond=0), moment, moment, True, "live", ["en", "pt"], {"a": 1}, Decimal("9.99")],
        [2, "x", moment.replace(microsecond=0), moment, moment, False, "rerun", [], {}, Decimal("0.50")],
    ]
    names = ["id", "maybe", "at", "at_berlin", "at_utc", "flag", "kind", "tags", "counts", "price"]
    client.insert("typed", rows, column_names=names)
    got = client.query("SELECT * FROM typed ORDER BY id").result_rows
    for row, expected in zip(got, rows):
        assert row[0:2] == tuple(expected[0:2]) and row[5:] == tuple(expected[5:])
        for value, want in zip(row[2:5], expected[2:5]):  # the same instant, however the zone is presented
            assert (value if value.tzinfo else value.replace(tzinfo=UTC)) == want
    assert client.query("SELECT toTimezone(at_berlin, 'UTC') = at_utc FROM typed").result_rows == [(True,), (True,)]
    assert client.query("SELECT toString(at_berlin) FROM typed LIMIT 1").result_rows == [("2024-05-06 09:08:09.123",)]


def test_million_row_insert(client):
    client.command("CREATE TABLE big (id UInt64, game LowCardinality(String), viewers UInt32) ENGINE = MergeTree ORDER BY id")
    n = 1_000_000
    ids = list(range(n))
    client.insert("big", [ids, [f"g{i % 50}" for i in ids], [i % 10_000 for i in ids]],
                  column_names=["id", "game", "viewers"], column_oriented=True)
    assert client.query("SELECT count(), uniqExact(game), sum(viewers) FROM big").result_rows == [(n, 50, sum(i % 10_000 for i in ids))]


def test_concurrent_inserts_and_queries(settings, client):
    client.command("CREATE TABLE events (writer UInt8, seq UInt32) ENGINE = MergeTree ORDER BY (writer, seq)")
    writers, batches, per_batch = 4, 10, 200

    def write(writer: int) -> None:
        with clickhouse_client(settings) as c:  # one client per thread, as clickhouse-connect requires
            for b in range(batches):
                c.insert("events", [[writer, b * per_batch + i] for i in range(per_batch)], column_names=["writer", "seq"])

    def read(_: int) -> int:
        with clickhouse_client(settings) as c:
            return max(c.command("SELECT count() FROM events") for _ in range(20))

    with ThreadPoolExecutor(max_workers=writers + 2) as pool:
        reads = [pool.submit(read, i) for i in range(2)]
        for f in [pool.submit(write, w) for w in range(writers)]:
            f.result()
        assert all(0 <= f.result() <= writers * batches * per_batch for f in reads)
    assert client.query("SELECT writer, count(), uniqExact(seq) FROM events GROUP BY writer ORDER BY writer").result_rows == [
        (w, batches * per_batch, batches * per_batch) for w in range(writers)
    ]


def test_insert_deduplication_token(client):
    client.command("""CREATE TABLE dedup (event_id String, n UInt32) ENGINE = ReplacingMergeTree ORDER BY event_id
                      SETTINGS non_replicated_deduplication_window = 100""")
    batch = [["e1", 1], ["e2", 2]]
    for _ in range(3):  # a retried sink batch carries the same token
        client.insert("dedup", batch, column_names=["event_id", "n"], settings={"insert_deduplication_token": "topic:0:0-1"})
    client.insert("dedup", [["e3", 3]], column_names=["event_id", "n"], settings={"insert_deduplication_token": "topic:0:2-2"})
    assert client.command("SELECT count() FROM dedup") == 3


# -- settings, parameters, sessions -----------------------------------------------------------------------
def test_settings_apply_to_one_query_only(client):
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert client.command("SELECT getSetting('max_threads')") != 3


def test_query_parameters(client):
    result = client.query("SELECT {n:UInt32} + 1 AS x, {s:String} AS s", parameters={"n": 41, "s": "it's"})
    assert result.result_rows == [(42, "it's")]


def test_session_keeps_set_and_temporary_tables(settings):
    with clickhouse_client(settings, session_id=f"s-{uuid.uuid4()}") as c:
        c.command("SET max_threads = 5")
        assert c.command("SELECT getSetting('max_threads')") == 5
        c.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
        c.command("INSERT INTO scratch VALUES (1), (2)")
        assert c.command("SELECT count() FROM scratch") == 2
    with clickhouse_client(settings, autogenerate_session_id=False) as other:
        assert other.command("SELECT getSetting('max_threads')") != 5


# -- errors ----------------------------------------------------------------------------------------------
def test_bad_sql_is_a_clickhouse_error(settings, client):
    with pytest.raises(DatabaseError) as err:
        client.query("SELEC 1")
    assert err.value.code == 62 and "SYNTAX_ERROR" in str(err.value)
    status, headers, body = http(settings, "SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")


def test_unknown_table_is_404(settings):
    status, headers, body = http(settings, "SELECT * FROM no_such_table")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    assert b"(UNKNOWN_TABLE)" in body


def test_bad_data_is_rejected_and_nothing_is_written(client):
    client.command("CREATE TABLE t (id UInt32, at DateTime) ENGINE = MergeTree ORDER BY id")
    with pytest.raises(DatabaseError) as err:
        client.raw_insert("t", ["id", "at"], b'{"id": 1, "at": "2024-01-01 00:00:00"}\n{"id": "x", "at": "never"}\n', fmt="JSONEachRow")
    assert err.value.code in (6, 27, 38, 41, 72)  # CANNOT_PARSE_*
    with pytest.raises(DatabaseError) as err:  # a RowBinary row cut short
        client.raw_insert("t", ["id", "at"], (7).to_bytes(4, "little") + b"\x01\x02", fmt="RowBinary")
    assert err.value.code == 33  # CANNOT_READ_ALL_DATA
    assert client.command("SELECT count() FROM t") == 0
    assert client.command("SELECT 1") == 1  # the server is fine afterwards


# -- migrations and the sql command ----------------------------------------------------------------------
def test_migrations_twice_equals_once(settings, client):
    first = apply_migrations(settings)
    schema = client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() ORDER BY table, position").result_rows
    second = apply_migrations(settings)
    assert "migrated" in first and "up to date" in second
    migrations = load_migrations(MIGRATIONS_DIR)
    assert client.query("SELECT version FROM schema_migrations ORDER BY version").result_rows == [(m.version,) for m in migrations]
    assert client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() ORDER BY table, position").result_rows == schema


def test_game_streams_enriched_dedups_redelivery(settings, client):
    apply_migrations(settings)
    seen = dt.datetime.now(UTC).replace(microsecond=0)  # within the 14-day TTL
    row = {"event_id": "evt-1", "stream_id": "s1", "user_id": "u1", "game_id": "g1", "viewer_count": 10,
           "started_at": seen, "data_retrieved_at": seen, "is_mature": False, "tags": "en"}
    for token in ("t1", "t1", "t2"):  # a retried batch, then a later re-delivery of the same event
        client.insert("game_streams_enriched", [list(row.values())], column_names=list(row), settings={"insert_deduplication_token": token})
    assert client.command("SELECT count() FROM game_streams_enriched FINAL") == 1
    client.command("OPTIMIZE TABLE game_streams_enriched FINAL")
    assert client.command("SELECT count() FROM game_streams_enriched") == 1


def test_sql_command_prints_a_table(settings, client):
    client.command("CREATE TABLE t (id UInt32, name Nullable(String)) ENGINE = MergeTree ORDER BY id")
    client.insert("t", [[1, "one"], [22, None]], column_names=["id", "name"])
    result = run_cli(settings, "sql", "SELECT id, name FROM t ORDER BY id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["id  name", "--  ----", " 1  one", "22  NULL", "(2 rows)"]
    bad = run_cli(settings, "sql", "SELEC 1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: Code: 62.") and "Traceback" not in bad.stderr
