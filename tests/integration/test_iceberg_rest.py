"""The lake as clusters run it: an Iceberg REST catalog with its tables on S3, written by Flink, read by pyiceberg.

Everything is real and on 127.0.0.1: Iceberg's own REST catalog server (the jar the apache/iceberg-rest-fixture
image runs, resolved by `make jars`; ``IcebergRestOnLoopback.java`` binds it to loopback), an S3-compatible store
(moto's server), and the local Flink cluster with ``iceberg-aws-bundle``. A bounded PyFlink job creates a table and
INSERTs into it through the catalog :mod:`connectors.iceberg` builds from the settings (``catalog-type=rest``,
``S3FileIO``, endpoint, path-style access, region and keys); pyiceberg reads the rows back through the same settings.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from connectors.iceberg import flink_catalog_options, load_catalog
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.platform.process import ManagedProcess, free_port
from twitch_pipeline.settings import Settings

pytestmark = pytest.mark.integration
# moto (with its server) comes with the project's `test` extra; an older virtualenv without it skips, saying so.
pytest.importorskip("moto.server", reason="moto[server] is not installed: `make python` (pyproject's test extra) installs it")

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "IcebergRestOnLoopback.java"
DRIVER = HERE / "jobs" / "rows_to_iceberg.py"
BUCKET = "lake"
ROWS = 5000
#: Keys of the throwaway store; the secret is fresh per run so the logs can be searched for it.
ACCESS_KEY = "twitch-test"


@contextmanager
def s3_store() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with the warehouse bucket; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _rest_server_env(settings: Settings) -> dict[str, str]:
    """The server's backend catalog as CATALOG_* variables (the fixture image's convention): a JDBC catalog on SQLite
    in the run directory, with the very warehouse and S3 options the clients get from the settings."""
    options = {k: v for k, v in flink_catalog_options(settings).items() if k not in ("type", "catalog-type", "uri")}
    options["uri"] = f"jdbc:sqlite:{settings.run_path / 'iceberg-rest-catalog.db'}"
    return {"CATALOG_" + k.replace("-", "__").replace(".", "_").upper(): v for k, v in options.items()}


@contextmanager
def rest_catalog(settings: Settings, port: int) -> Iterator[ManagedProcess]:
    jars = sorted((settings.jars_dir / "iceberg-rest").glob("iceberg-open-api-*.jar"))
    assert jars, f"no Iceberg REST catalog server jar in {settings.jars_dir / 'iceberg-rest'}: run `make test-jars`"
    server = ManagedProcess("iceberg-rest", settings.run_path)
    server.spawn(["java", "-cp", str(jars[-1]), str(LAUNCHER), str(port)], env=_rest_server_env(settings))
    try:
        def answers() -> bool:
            if (reason := server.exited_early()) is not None:
                raise AssertionError(f"the REST catalog server exited: {reason}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/config", timeout=2) as resp:
                return resp.status == 200

        wait_until(answers, 60, "the Iceberg REST catalog server")
        yield server
    finally:
        server.stop(10)


@pytest.fixture(scope="module")
def lake(make_settings) -> Iterator[Settings]:
    """Settings of a platform whose lake is the REST catalog on S3, with that catalog, its store and Flink running."""
    with s3_store() as endpoint:
        import boto3

        secret = "never-logged-" + secrets.token_hex(8)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        port = free_port()
        settings = make_settings(
            iceberg_catalog_type="rest", iceberg_uri=f"http://127.0.0.1:{port}", iceberg_warehouse=f"s3://{BUCKET}/warehouse",
            iceberg_s3_endpoint=endpoint, iceberg_s3_path_style_access=True, iceberg_s3_region="us-east-1",
            iceberg_s3_access_key_id=ACCESS_KEY, iceberg_s3_secret_access_key=secret,
        )
        with rest_catalog(settings, port), running(settings, ["iceberg", "flink"]):
            yield settings


def test_flink_writes_through_the_rest_catalog_to_s3_and_pyiceberg_reads_it_back(lake: Settings) -> None:
    import boto3

    from twitch_pipeline.jobs import submit
    from twitch_pipeline.platform.flink import Flink

    table = "rest_rows"
    job_id = submit(lake, str(DRIVER), ["--table", table, "--rows", str(ROWS)], resume=False)
    assert Flink(lake).rest(f"/jobs/{job_id}")["state"] == "FINISHED"

    # The REST server, not a local catalog file, knows the table.
    with urllib.request.urlopen(f"{lake.iceberg_uri}/v1/namespaces/{lake.iceberg_namespace}/tables", timeout=5) as resp:
        assert {"namespace": [lake.iceberg_namespace], "name": table} in json.load(resp)["identifiers"]

    # pyiceberg, built from the same settings, sees every row exactly once.
    lake_table = load_catalog(lake).load_table(f"{lake.iceberg_namespace}.{table}")
    rows = lake_table.scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": i, "name": f"row-{i}"} for i in range(1, ROWS + 1)]

    # The metadata and data files are objects in the S3 store, under the warehouse.
    warehouse = f"{lake.iceberg_warehouse}/{lake.iceberg_namespace}/{table}/"
    assert lake_table.metadata_location.startswith(warehouse)
    data_files = {task.file.file_path for task in lake_table.scan().plan_files()}
    assert data_files and all(path.startswith(warehouse + "data/") for path in data_files)
    s3 = boto3.client("s3", endpoint_url=lake.iceberg_s3_endpoint, aws_access_key_id=lake.iceberg_s3_access_key_id,
                      aws_secret_access_key=lake.iceberg_s3_secret_access_key, region_name="us-east-1")
    stored = {f"s3://{BUCKET}/{o['Key']}" for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert data_files <= stored and lake_table.metadata_location in stored

    # The secret key went to every client and the server, and into none of their logs.
    logs = [p for p in (lake.run_path / "logs").rglob("*") if p.is_file()]
    assert logs and not [p.name for p in logs if lake.iceberg_s3_secret_access_key in p.read_text(errors="replace")]

