"""A single-node KRaft Kafka broker started from the Maven-resolved jars."""

from __future__ import annotations

import base64
import subprocess
import uuid
from typing import Any

from twitch_pipeline.errors import PlatformError
from twitch_pipeline.platform.component import (
    Component,
    ensure_dir,
    require_jars,
    require_java,
)
from twitch_pipeline.platform.process import ManagedProcess

# Flink's exactly-once Kafka sink opens transactions with a 1 h timeout; the broker must allow it.
TRANSACTION_MAX_TIMEOUT_MS = 3_600_000

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.log
        level: WARN
      - name: org.apache.kafka.storage
        level: WARN
      - name: state.change.logger
        level: WARN
"""


class Kafka(Component):
    name = "kafka"
    ports = ("kafka_port", "kafka_controller_port")

    @property
    def home(self):
        return self.run_dir / "kafka"

    @property
    def external(self) -> bool:
        return bool(self.settings.kafka_bootstrap)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [] if self.external else [ManagedProcess("kafka", self.run_dir)]

    def server_properties(self) -> str:
        s = self.settings
        data = self.home / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{s.host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(s.kafka_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
            "group.initial.rebalance.delay.ms": "0",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        jars = require_jars(self.settings.jars_dir / "kafka")
        return [
            require_java(), f"-Xmx{heap}", f"-Xms{heap}" if heap != "256m" else "-Xms64m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            # native compression libraries are unpacked here, not in /tmp, and go with the run directory
            f"-Djava.io.tmpdir={ensure_dir(self.home / 'tmp')}",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            "-cp", ":".join(str(j) for j in jars), main, *args,
        ]

    def start(self) -> None:
        if self.external:
            return
        ensure_dir(self.home / "data")
        conf = self.home / "server.properties"
        conf.write_text(self.server_properties())
        (self.home / "log4j2.yaml").write_text(LOG4J2)
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                # `--cluster-id=` form: a random id may start with "-", which would otherwise parse as an option.
                self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(conf), "--standalone"),
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise PlatformError(f"kafka storage format failed: {(fmt.stderr or fmt.stdout).strip().splitlines()[-1:]}")
        self.processes[0].spawn(self._java("kafka.Kafka", str(conf), heap=self.settings.kafka_heap))

    def health(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"healthy": False, "bootstrap": self.settings.bootstrap_servers}
        if not self.running():
            return entry
        from connectors.kafka import admin_client

        admin = admin_client(self.settings)
        try:
            meta = admin.list_topics(timeout=2)
            entry["healthy"] = bool(meta.brokers)
            entry["topics"] = len([t for t in meta.topics if not t.startswith("__")])
        except Exception:  # noqa: BLE001 - unreachable broker = unhealthy
            pass
        return entry
