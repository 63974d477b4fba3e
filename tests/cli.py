"""Run the real `twitch-pipeline` command against given settings (as a user would, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

from twitch_pipeline.settings import Settings, to_env


def run_cli(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twitch_pipeline.cli", *args],
        env={**os.environ, **to_env(settings)},
        capture_output=True, text=True, timeout=timeout,
    )
