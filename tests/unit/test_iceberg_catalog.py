"""The Iceberg catalog both sides build from the settings: JDBC locally, REST + S3 in clusters, bad combinations refused.

The REST catalog, S3FileIO and pyiceberg against a real server and object store: tests/integration/test_iceberg_rest.py.
"""

from __future__ import annotations

import re

import pytest

from connectors.iceberg import S3_FILE_IO, flink_catalog_ddl, flink_catalog_options, pyiceberg_properties
from twitch_pipeline.k8s_manifests import cluster_settings
from twitch_pipeline.settings import SettingsError, load_settings, redacted

REST = {
    "TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE": "rest",
    "TWITCH_PIPELINE_ICEBERG_URI": "http://iceberg-rest:8181",
    "TWITCH_PIPELINE_ICEBERG_WAREHOUSE": "s3://twitch-lake/warehouse",
    "TWITCH_PIPELINE_ICEBERG_S3_ENDPOINT": "http://minio:9000",
    "TWITCH_PIPELINE_ICEBERG_S3_PATH_STYLE_ACCESS": "true",
    "TWITCH_PIPELINE_ICEBERG_S3_REGION": "us-east-1",
    "TWITCH_PIPELINE_ICEBERG_S3_ACCESS_KEY_ID": "twitch",
    "TWITCH_PIPELINE_ICEBERG_S3_SECRET_ACCESS_KEY": "s3cr3t",
}


def settings(**env: str):
    return load_settings(environ={k: v for k, v in env.items()}, dotenv=None)


def test_local_default_is_the_jdbc_catalog_on_sqlite_with_a_file_warehouse(tmp_path) -> None:
    s = settings(TWITCH_PIPELINE_RUN_DIR=str(tmp_path))
    options = flink_catalog_options(s)
    assert options["catalog-impl"] == "org.apache.iceberg.jdbc.JdbcCatalog"
    assert options["uri"] == f"jdbc:sqlite:{tmp_path.resolve()}/iceberg/catalog.db"
    assert options["warehouse"] == (tmp_path.resolve() / "iceberg" / "warehouse").as_uri()
    assert "catalog-type" not in options and "io-impl" not in options and not any(k.startswith("s3.") for k in options)
    assert pyiceberg_properties(s) == {"uri": f"sqlite:///{tmp_path.resolve()}/iceberg/catalog.db", "warehouse": options["warehouse"]}


def test_rest_catalog_on_s3_gives_both_sides_the_same_server_store_and_keys() -> None:
    s = settings(**REST)
    assert flink_catalog_options(s) == {
        "type": "iceberg",
        "catalog-type": "rest",
        "uri": "http://iceberg-rest:8181",
        "warehouse": "s3://twitch-lake/warehouse",
        "io-impl": S3_FILE_IO,
        "s3.endpoint": "http://minio:9000",
        "s3.access-key-id": "twitch",
        "s3.secret-access-key": "s3cr3t",
        "s3.path-style-access": "true",
        "client.region": "us-east-1",
    }
    assert pyiceberg_properties(s) == {
        "uri": "http://iceberg-rest:8181",
        "warehouse": "s3://twitch-lake/warehouse",
        "s3.endpoint": "http://minio:9000",
        "s3.access-key-id": "twitch",
        "s3.secret-access-key": "s3cr3t",
        "s3.region": "us-east-1",
    }


def test_keys_left_empty_leave_credentials_to_the_default_aws_chain() -> None:
    s = settings(**{k: v for k, v in REST.items() if "_KEY" not in k})
    for props in (flink_catalog_options(s), pyiceberg_properties(s)):
        assert not any("key" in k for k in props)


def test_rest_catalog_without_a_warehouse_leaves_it_to_the_server() -> None:
    s = settings(TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE="rest", TWITCH_PIPELINE_ICEBERG_URI="https://lake.example.com/catalog")
    assert "warehouse" not in flink_catalog_options(s) and "warehouse" not in pyiceberg_properties(s)
    assert "io-impl" not in flink_catalog_options(s)


def test_jdbc_catalog_with_an_s3_warehouse_writes_through_s3fileio() -> None:
    s = settings(TWITCH_PIPELINE_ICEBERG_WAREHOUSE="s3://bucket/wh", TWITCH_PIPELINE_ICEBERG_S3_ENDPOINT="http://127.0.0.1:9000")
    options = flink_catalog_options(s)
    assert options["catalog-impl"].endswith("JdbcCatalog") and options["io-impl"] == S3_FILE_IO
    assert options["s3.endpoint"] == "http://127.0.0.1:9000" and "s3.path-style-access" not in options


def test_ddl_quotes_values_and_reads_back_as_the_options() -> None:
    """flink_jobs/backfill_aggregate.py reads the options back out of the DDL: they must survive the round trip."""
    s = settings(**REST)
    ddl = flink_catalog_ddl(s)
    assert ddl.startswith("CREATE CATALOG IF NOT EXISTS `twitch` WITH (")
    assert dict(re.findall(r"'([^']+)'='([^']*)'", ddl)) == flink_catalog_options(s)
    quoted = settings(**{**REST, "TWITCH_PIPELINE_ICEBERG_S3_SECRET_ACCESS_KEY": "it's"})
    assert "'s3.secret-access-key'='it''s'" in flink_catalog_ddl(quoted)


def test_s3_keys_are_secrets_never_shown() -> None:
    shown = redacted(settings(**REST))
    assert shown["TWITCH_PIPELINE_ICEBERG_S3_ACCESS_KEY_ID"] == shown["TWITCH_PIPELINE_ICEBERG_S3_SECRET_ACCESS_KEY"] == "***"
    assert "s3cr3t" not in str(shown)


def test_cluster_settings_use_the_rest_catalog() -> None:
    s = cluster_settings()
    assert flink_catalog_options(s)["catalog-type"] == "rest" and flink_catalog_options(s)["io-impl"] == S3_FILE_IO
    # The keys come from the object-store Secret as AWS_* variables (the default chain), never from the ConfigMap.
    assert not s.iceberg_s3_access_key_id and not s.iceberg_s3_secret_access_key


@pytest.mark.parametrize(("env", "named"), [
    ({"TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE": "hive"}, "TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE='hive'"),
    ({"TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE": "rest"}, "TWITCH_PIPELINE_ICEBERG_URI=''"),
    ({"TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE": "rest", "TWITCH_PIPELINE_ICEBERG_URI": "jdbc:sqlite:/x.db"}, "TWITCH_PIPELINE_ICEBERG_URI='jdbc:sqlite"),
    ({"TWITCH_PIPELINE_ICEBERG_URI": "http://iceberg-rest:8181"}, "TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE=rest"),
    ({"TWITCH_PIPELINE_ICEBERG_S3_ENDPOINT": "minio:9000"}, "TWITCH_PIPELINE_ICEBERG_S3_ENDPOINT='minio:9000'"),
    ({"TWITCH_PIPELINE_ICEBERG_S3_ACCESS_KEY_ID": "twitch"}, "TWITCH_PIPELINE_ICEBERG_S3_SECRET_ACCESS_KEY is empty"),
    ({"TWITCH_PIPELINE_ICEBERG_S3_SECRET_ACCESS_KEY": "s3cr3t"}, "TWITCH_PIPELINE_ICEBERG_S3_ACCESS_KEY_ID is empty"),
    ({"TWITCH_PIPELINE_ICEBERG_S3_PATH_STYLE_ACCESS": "maybe"}, "TWITCH_PIPELINE_ICEBERG_S3_PATH_STYLE_ACCESS='maybe'"),
])
def test_bad_combinations_fail_fast_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(named)) as err:
        settings(**env)
    assert "s3cr3t" not in str(err.value)
