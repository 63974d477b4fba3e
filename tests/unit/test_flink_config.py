"""The local Flink cluster's configuration: what it adds to the wheel's defaults."""

from __future__ import annotations

import dataclasses

from twitch_pipeline.platform.flink import cluster_config
from twitch_pipeline.settings import load_settings


def test_temporary_files_go_to_the_run_directory_after_the_wheels_own_options(tmp_path):
    settings = dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=tmp_path / "run")
    options = cluster_config(settings)["env.java.opts.all"]
    assert options.endswith(f" -Djava.io.tmpdir={tmp_path / 'run' / 'flink' / 'tmp'}")
    assert options.startswith("--add-exports")  # Java 17's module openings from the wheel's config.yaml are kept


def test_a_run_directory_with_a_space_keeps_the_default_temporary_directory(tmp_path):
    settings = dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=tmp_path / "my runs")
    assert "java.io.tmpdir" not in cluster_config(settings)["env.java.opts.all"]
