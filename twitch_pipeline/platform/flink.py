"""A Flink standalone cluster run from the apache-flink wheel's own ``bin/`` scripts.

The wheel ships a complete Flink distribution inside the ``pyflink`` package. We leave it untouched
and point its scripts at run-directory copies of what differs per platform: ``FLINK_CONF_DIR``
(our ``config.yaml``), ``FLINK_LIB_DIR`` (the wheel's jars plus the pinned connector jars) and
``FLINK_LOG_DIR``. JobManager and TaskManager run with ``start-foreground`` so their pids are ours.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twitch_pipeline.platform.component import (
    Component,
    ensure_dir,
    require_jars,
    require_java,
)
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import Settings, to_env


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def flink_env(settings: Settings) -> dict[str, str]:
    """Environment under which the wheel's scripts (cluster and `flink run`) use our conf and jars."""
    root = settings.run_path / "flink"
    return {
        "FLINK_HOME": str(flink_home()),
        "FLINK_CONF_DIR": str(root / "conf"),
        "FLINK_LIB_DIR": str(root / "lib"),
        "FLINK_LOG_DIR": str(settings.run_path / "logs"),
        "FLINK_PID_DIR": str(settings.run_path / "pids"),
        "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
    }


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def cluster_config(settings: Settings) -> dict[str, Any]:
    """The cluster's config.yaml: the wheel's defaults with local ports, memory and state paths."""
    import yaml

    defaults = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text())
    config = _flatten(defaults)
    host = settings.host
    config.update({
        "jobmanager.rpc.address": host,
        "jobmanager.rpc.port": settings.flink_rpc_port,
        "jobmanager.bind-host": host,
        "jobmanager.memory.process.size": settings.flink_jobmanager_memory,
        "taskmanager.bind-host": host,
        "taskmanager.host": host,
        "taskmanager.memory.process.size": settings.flink_taskmanager_memory,
        "taskmanager.numberOfTaskSlots": settings.flink_task_slots,
        # `flink run` submits to rest.address:rest.port: the external cluster's when its URL is set.
        "rest.address": urlsplit(settings.flink_rest).hostname,
        "rest.bind-address": host,
        "rest.port": urlsplit(settings.flink_rest).port or settings.flink_rest_port,
        "parallelism.default": settings.flink_parallelism,
        "execution.checkpointing.dir": settings.checkpoint_uri,
        "execution.checkpointing.savepoint-dir": settings.savepoint_uri,
        # Kept when a job is cancelled or fails for good, so the supervisor can resume it after a cluster restart.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": True,
        # Exponential back-off rides out a TaskManager that takes a while to come back (a crash, a restart
        # under load) instead of burning a fixed number of quick attempts while no slot exists.
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": "15 s",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": settings.restart_attempts,
        "heartbeat.timeout": 20000,
        "python.client.executable": sys.executable,
        "python.executable": sys.executable,
        "env.log.dir": str(settings.run_path / "logs"),
        "env.pid.dir": str(settings.run_path / "pids"),
        "web.submit.enable": False,
        # The local lake's files through jvm/'s LocalFileSystem: Hadoop's own starts a chmod process per file written
        # (20 a second in the end-to-end benchmark), on the task thread of each Iceberg commit.
        "flink.hadoop.fs.file.impl": "io.twitchpipeline.flink.LocalFileSystem",
        # PyFlink's client keeps py4j threads alive past job submission; Flink's leak check then throws.
        "classloader.check-leaked-classloader": False,
    })
    # Temporary files in the run directory, not /tmp (io.tmp.dirs follows java.io.tmpdir): a TaskManager's working
    # directory alone holds ~220 MB of job jars, and one that is killed never removes it. Before this, a day of test
    # runs left 195 of them in /tmp (20 GB), with ~800 of Flink's other temporary directories and native libraries.
    # Flink's scripts split these options on whitespace, so a run directory with a space in its path keeps /tmp.
    if not any(c.isspace() for c in str(flink_tmp(settings))):
        config["env.java.opts.all"] = f"{config.get('env.java.opts.all', '')} -Djava.io.tmpdir={flink_tmp(settings)}".strip()
    return config


def flink_tmp(settings: Settings) -> Path:
    """The Flink processes' temporary directory (their working directories, blobs, spills)."""
    return settings.run_path / "flink" / "tmp"


class Flink(Component):
    name = "flink"
    ports = ("flink_rest_port", "flink_rpc_port")

    @property
    def root(self) -> Path:
        return self.run_dir / "flink"

    @property
    def external(self) -> bool:
        return bool(self.settings.flink_rest_url)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [] if self.external else [ManagedProcess("flink-jobmanager", self.run_dir), ManagedProcess("flink-taskmanager", self.run_dir)]

    def prepare(self) -> None:
        """Write conf/ and lib/ into the run directory (idempotent; also used by `flink run`)."""
        import yaml

        home = flink_home()
        conf = ensure_dir(self.root / "conf")
        for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties", "logback-console.xml"):
            (conf / name).write_bytes((home / "conf" / name).read_bytes())
        (conf / "config.yaml").write_text(yaml.safe_dump(cluster_config(self.settings), sort_keys=True))
        lib = ensure_dir(self.root / "lib")
        wanted = {p.name: p for p in [*home.joinpath("lib").glob("*.jar"), *require_jars(self.settings.jars_dir / "flink")]}
        for stale in lib.glob("*.jar"):
            if stale.name not in wanted or stale.resolve() != wanted[stale.name].resolve():
                stale.unlink()
        for name, jar in wanted.items():
            if not (lib / name).exists():
                (lib / name).symlink_to(jar)
        for path in (self.root / "checkpoints", self.root / "savepoints", flink_tmp(self.settings)):
            ensure_dir(path)

    def start(self) -> None:
        if self.external:
            return
        require_java()
        jobmanager, taskmanager = self.processes
        # What a stopped process left in the temporary directory is nobody's now (a killed TaskManager never
        # removes its working directory, tm_*); the JobManager's files are not marked, so they go when both are down.
        tmp = flink_tmp(self.settings)
        if not taskmanager.running():
            for path in [tmp] if not jobmanager.running() else tmp.glob("tm_*"):
                shutil.rmtree(path, ignore_errors=True)
        self.prepare()  # (re)creates the temporary directory
        bin_dir = flink_home() / "bin"
        env = flink_env(self.settings)
        if not jobmanager.running():
            jobmanager.spawn(["bash", str(bin_dir / "jobmanager.sh"), "start-foreground"], env=env)
        if not taskmanager.running():
            taskmanager.spawn(["bash", str(bin_dir / "taskmanager.sh"), "start-foreground"], env=env)

    def rest(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 5) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.settings.flink_rest + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def health(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"healthy": False, "rest": self.settings.flink_rest}
        if not self.running():
            return entry
        try:
            overview = self.rest("/overview", timeout=2)
        except OSError:
            return entry
        entry["taskmanagers"] = overview.get("taskmanagers", 0)
        entry["slots_available"] = overview.get("slots-available", 0)
        entry["jobs_running"] = overview.get("jobs-running", 0)
        entry["healthy"] = entry["taskmanagers"] > 0
        return entry


def flink_cli(settings: Settings) -> list[str]:
    return ["bash", str(flink_home() / "bin" / "flink")]


def flink_cli_env(settings: Settings) -> dict[str, str]:
    """`flink run` passes its environment to the Python driver, which reads its settings from it."""
    return {**os.environ, **to_env(settings), **flink_env(settings)}
