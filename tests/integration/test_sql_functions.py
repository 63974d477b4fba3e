"""The project's Flink SQL functions (jvm/) against Flink's own readers, in a local Flink (the PyFlink gateway's JVM).

``iso_timestamp`` replaces the JSON format's TIMESTAMP_LTZ reader in the aggregation jobs, so it must read every
text that Flink's JSON writer produces (it drops trailing zeros of the fraction: ``.5Z``, no fraction at all) and
the producers' form to the same instant the format would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twitch_pipeline.settings import load_settings

pytestmark = pytest.mark.integration

FUNCTIONS_JAR = load_settings(environ={}, dotenv=None).jars_dir / "flink" / "twitch-pipeline-functions.jar"
INSTANTS_MS = [0, 1_785_456_000_000, 1_785_456_000_500, 1_785_456_000_120, 1_785_456_000_123, 1_785_542_399_999, 951_782_400_001]


@pytest.fixture(scope="module")
def env():
    from pyflink.table import EnvironmentSettings, TableEnvironment

    assert FUNCTIONS_JAR.exists(), f"{FUNCTIONS_JAR} missing: run `make jars`"
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("pipeline.jars", FUNCTIONS_JAR.as_uri())
    env.get_config().set("table.local-time-zone", "UTC")
    env.get_config().set("parallelism.default", "1")
    env.execute_sql("CREATE TEMPORARY FUNCTION iso_timestamp AS 'io.twitchpipeline.flink.IsoTimestamp' LANGUAGE JAVA")
    return env


def rows(env, query: str) -> list[tuple]:
    with env.execute_sql(query).collect() as results:
        return [tuple(row) for row in results]


def test_iso_timestamp_reads_what_flinks_json_writer_wrote_as_the_json_format_does(env, tmp_path: Path):
    written = tmp_path / "written"
    env.execute_sql(f"CREATE TEMPORARY TABLE out_json (id INT, t TIMESTAMP_LTZ(3)) WITH ('connector' = 'filesystem', "
                    f"'path' = '{written.as_uri()}', 'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601')")
    values = ", ".join(f"({i}, TO_TIMESTAMP_LTZ({ms}, 3))" for i, ms in enumerate(INSTANTS_MS))
    env.execute_sql(f"INSERT INTO out_json VALUES {values}").wait()
    texts = [json.loads(line)["t"] for part in written.rglob("*") if part.is_file() and not part.name.startswith(".") for line in part.read_text().splitlines()]
    assert {"1970-01-01T00:00:00Z", "2026-07-31T00:00:00.5Z", "2026-07-31T00:00:00.12Z"} <= set(texts)  # the writer's short forms are covered

    for name, column in (("as_ltz", "t TIMESTAMP_LTZ(3)"), ("as_text", "t STRING")):
        env.execute_sql(f"CREATE TEMPORARY TABLE {name} (id INT, {column}) WITH ('connector' = 'filesystem', "
                        f"'path' = '{written.as_uri()}', 'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601')")
    pairs = rows(env, "SELECT a.id, UNIX_TIMESTAMP(CAST(a.t AS STRING)) * 1000 + EXTRACT(MILLISECOND FROM a.t), "
                      "UNIX_TIMESTAMP(CAST(iso_timestamp(b.t) AS STRING)) * 1000 + EXTRACT(MILLISECOND FROM iso_timestamp(b.t)), "
                      "a.t = iso_timestamp(b.t) FROM as_ltz a JOIN as_text b ON a.id = b.id")
    assert sorted(pairs) == [(i, ms, ms, True) for i, ms in enumerate(INSTANTS_MS)]


@pytest.mark.parametrize(("text", "expected_ms"), [
    ("2026-07-31T12:34:56.789Z", 1_785_501_296_789),  # the producers' form
    ("2026-07-31T12:34:56Z", 1_785_501_296_000),
    ("2026-07-31T12:34:56.7Z", 1_785_501_296_700),
    ("2026-07-31T12:34:56.789999999Z", 1_785_501_296_789),  # kept to the millisecond, as TIMESTAMP_LTZ(3)
    ("2026-07-31 12:34:56.789", 1_785_501_296_789),  # not the fast form: Flink's parser reads it
    ("2026-02-30T00:00:00.000Z", 1_772_236_800_000),  # no such day: Flink's parser decides (as TO_TIMESTAMP does), the 28th
    ("yesterday", None),
    (None, None),
])
def test_iso_timestamp_reads_utc_text_to_the_millisecond_and_null_for_what_is_no_timestamp(env, text, expected_ms):
    literal = "CAST(NULL AS STRING)" if text is None else f"'{text}'"
    # PyFlink collects no TIMESTAMP_LTZ: the instant comes back as its text in the session's zone, UTC
    ((value,),) = rows(env, f"SELECT CAST(iso_timestamp({literal}) AS STRING)")
    assert value == (None if expected_ms is None else datetime.fromtimestamp(expected_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
