"""Errors by kind, and the back-off every long-running service uses to wait out an outage.

Three kinds, each with one way of handling it:

* :class:`ConfigurationError` — the user must change something (a setting, a missing install step, a
  command run in the wrong order). Fail fast with one line that names the fix; retrying cannot help.
* :class:`TransientError` — an outage (broker down, ClickHouse unreachable, a 5xx or 429). Retry with
  exponential back-off, log once when the state changes (not on every attempt), never lose the record.
* :class:`BadDataError` — one record cannot be processed. It goes to a dead-letter topic with the reason;
  the service goes on.

This module is a leaf (standard library only): every layer raises and catches these.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class PipelineError(Exception):
    """Base of the project's errors; ``str(err)`` is a one-line message for a person."""


class ConfigurationError(PipelineError):
    """User-fixable: the message says what is wrong and how to fix it."""


class PlatformError(ConfigurationError):
    """A local or external component cannot be started, reached or used; the CLI prints the message as one
    line, without a traceback."""


class TransientError(PipelineError):
    """Retryable: the operation may succeed if tried again later."""


class BadDataError(PipelineError):
    """A record that can never be processed; dead-letter it with ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Backoff:
    """Exponential back-off with full jitter, reset after a success.

    ``wait`` sleeps on an event so that a stop request ends the wait at once (a SIGTERM during a retry
    wait took 26 s before this); it returns False when stopped.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return cap / 2 + self.rng.uniform(0, cap / 2)

    def reset(self) -> None:
        self.attempt = 0

    def wait(self, stop: threading.Event | None = None) -> bool:
        delay = self.next_delay()
        if stop is None:
            time.sleep(delay)
            return True
        return not stop.wait(delay)


class StateLog:
    """Logs a service's health only when it changes: one line when an outage starts, one when it ends.

    ``state`` is what `status` shows (e.g. ``"waiting for Kafka at host:9092"``); with ``path`` it is also
    written there as JSON on every change, for `status` to read from another process.
    """

    def __init__(self, log: Callable[[str], None], healthy: str = "ok", path: Path | None = None):
        self._log = log
        self._healthy = healthy
        self._path = path
        self.state = healthy
        self.since = time.time()
        self.last_error = ""
        self._save()

    def _save(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"state": self.state, "since": self.since, "last_error": self.last_error}))
            tmp.replace(self._path)

    def failing(self, what: str, error: object) -> None:
        """``what`` is unavailable; a new ``what`` is a new state (Kafka back, then ClickHouse away)."""
        self.last_error = f"{what}: {error}"
        if self.state != f"waiting for {what}":
            self.state = f"waiting for {what}"
            self.since = time.time()
            self._log(f"{what} unavailable, retrying with back-off until it returns: {error}")
            self._save()

    def ok(self) -> None:
        if self.state != self._healthy:
            self._log(f"{self.state.removeprefix('waiting for ')} is back after {time.time() - self.since:.0f} s")
            self.state = self._healthy
            self.since = time.time()
            self._save()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25) -> None:
    """Poll ``check`` until it is true or ``timeout_s`` passes (then raise naming ``what``).

    A probe that raises just means "not yet", except a :class:`ConfigurationError`, which no wait can fix.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except ConfigurationError:
            raise
        except Exception:  # noqa: BLE001 - a failing probe just means "not yet"
            pass
        if time.monotonic() >= deadline:
            raise PlatformError(f"{what} did not happen within {timeout_s:.0f}s")
        time.sleep(interval_s)
