"""The one timestamp format of every contract and output: ISO-8601 UTC with milliseconds (``...T11:05:00.000Z``).

A leaf module (standard library only) so producers, the sink, tests and benchmarks format times one way.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import lru_cache


def iso_ms(epoch_ms: int) -> str:
    """``2026-11-21T11:05:00.000Z`` for a Unix time in milliseconds."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # A producer formats every event's times, and they fall in few distinct seconds: strftime was ~2 µs an event.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso(moment: datetime) -> str:
    """The same format for a datetime (naive ones are taken as UTC)."""
    return iso_ms(datetime_ms(moment))


def now_iso() -> str:
    return iso_ms(int(time.time() * 1000))


def datetime_ms(value: datetime) -> int:
    if value.tzinfo is None:  # Helix times are UTC; twitchAPI drops the zone only for unix timestamps
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def parse_iso_ms(text: str) -> int:
    return datetime_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
