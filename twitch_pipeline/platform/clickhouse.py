"""ClickHouse for the platform: the embedded chDB HTTP server, or an external server when configured."""

from __future__ import annotations

import sys
import urllib.request
from typing import Any

from connectors.clickhouse import endpoint
from twitch_pipeline.platform.component import Component, ensure_dir
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import to_env


class ClickHouse(Component):
    """``TWITCH_PIPELINE_CLICKHOUSE_URL`` set: an external server we only health-check; else our chDB server."""

    name = "clickhouse"

    @property
    def ports(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("clickhouse_port",) if self.settings.clickhouse_embedded else ()

    @property
    def processes(self) -> list[ManagedProcess]:
        return [ManagedProcess("clickhouse", self.run_dir)] if self.settings.clickhouse_embedded else []

    @property
    def external(self) -> bool:
        return not self.settings.clickhouse_embedded

    def start(self) -> None:
        if not self.settings.clickhouse_embedded:
            return
        data = ensure_dir(self.run_dir / "clickhouse")
        # Credentials travel in the environment (as settings), never on the command line.
        self.processes[0].spawn(
            [sys.executable, "-m", "twitch_pipeline.clickhouse_server", "--data-dir", str(data),
             "--host", self.settings.host, "--port", str(self.settings.clickhouse_port)],
            env=to_env(self.settings),
        )

    def dsn(self) -> str:
        return endpoint(self.settings).dsn()

    def kill(self) -> None:
        """kill -9 the server, as a crash would (tests of durability use it)."""
        for proc in self.processes:
            proc.kill()

    def health(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"healthy": False, "url": self.dsn(), "embedded": self.settings.clickhouse_embedded}
        if not self.running():
            return entry
        try:
            with urllib.request.urlopen(self.settings.clickhouse_http_url + "/ping", timeout=2) as resp:
                entry["healthy"] = resp.status == 200
        except OSError:
            pass
        return entry
