"""Local platform: time from `up` to healthy on a fresh run directory, and resident memory at idle.

(The cold figure of `make run` on a fresh clone — pip, Maven and then `up` — is measured by timing
`make install` separately; this benchmark covers the part that repeats on every start.)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from twitch_pipeline.platform.lifecycle import down, isolated, status, up
from twitch_pipeline.settings import load_settings


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-platform-") as tmp:
        settings = isolated(load_settings(), Path(tmp))
        try:
            began = time.monotonic()
            up(settings, echo=lambda _: None)
            first_up_s = time.monotonic() - began
            began = time.monotonic()
            up(settings, echo=lambda _: None)
            idempotent_up_s = time.monotonic() - began
            time.sleep(30)  # "at idle" means after start-up work settles (JIT, GC, first checkpoints)
            memory = {name: entry.get("rss_mb") for name, entry in status(settings)["components"].items() if entry.get("rss_mb")}
            down(settings, echo=lambda _: None)
            began = time.monotonic()
            up(settings, echo=lambda _: None)
            restart_up_s = time.monotonic() - began
        finally:
            down(settings, echo=lambda _: None)
    return {
        "up_fresh_run_dir_s": round(first_up_s, 1),
        "up_again_when_running_s": round(idempotent_up_s, 1),
        "up_after_down_s": round(restart_up_s, 1),
        "idle_rss_mb": memory,
        "idle_rss_total_mb": round(sum(memory.values()), 1),
    }
