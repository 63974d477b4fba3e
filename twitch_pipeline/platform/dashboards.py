"""The dashboard page server as a platform component: the Grafana dashboards and the data catalog in the browser."""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

from twitch_pipeline.platform.component import Component
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import to_env


class Dashboards(Component):
    name = "dashboards"
    ports = ("dashboard_port",)
    after_hooks = True  # its queries and metrics collector need the schema the migrations create

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.dashboard_port}/"

    @property
    def processes(self) -> list[ManagedProcess]:
        return [ManagedProcess("dashboards", self.run_dir)]

    def start(self) -> None:
        # Settings (ClickHouse credentials among them) travel in the environment, never on the command line.
        self.processes[0].spawn([sys.executable, "-m", "twitch_pipeline.dashboards.server"], env=to_env(self.settings))

    def health(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"healthy": False, "url": self.url}
        if not self.running():
            return entry
        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=2) as resp:
                entry["healthy"] = resp.status == 200 and json.loads(resp.read()).get("ok") is True
        except (OSError, ValueError):
            pass
        return entry
