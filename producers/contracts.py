"""The data contracts of the raw topics: JSON Schemas, timestamp format, event ids, encoding.

The schemas in ``producers/schemas/`` are the source of truth that the Flink jobs of the pipeline are
written against; everything a producer sends as valid must pass them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

#: Largest value a consumer must accept; larger values are malformed by contract ("oversized").
MAX_EVENT_BYTES = 64 * 1024


def iso_ms(epoch_ms: int) -> str:
    """``2026-11-21T11:05:00.000Z``: the one timestamp format of every contract."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def datetime_ms(value: datetime) -> int:
    if value.tzinfo is None:  # Helix times are UTC; twitchAPI drops the zone only for unix timestamps
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def parse_iso_ms(text: str) -> int:
    return datetime_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


def stream_event_id(stream_id: str, data_retrieved_at: str) -> str:
    """Deterministic id of one stream snapshot: the same snapshot sent twice has the same id."""
    return hashlib.blake2b(f"{stream_id}|{data_retrieved_at}".encode(), digest_size=16).hexdigest()


_MENTION = re.compile(r"(?<![\w@])@(\w{1,25})")


def mentions(text: str) -> list[str]:
    """Logins a chat message mentions with ``@``, lower case, in order, each once."""
    return list(dict.fromkeys(m.lower() for m in _MENTION.findall(text)))


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def schema_path(topic: str) -> Path:
    return SCHEMA_DIR / f"{topic}.schema.json"


@lru_cache(maxsize=None)
def schema(topic: str) -> dict[str, Any]:
    path = schema_path(topic)
    if not path.is_file():
        raise LookupError(f"no data contract for topic {topic!r} (expected {path})")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def validator(topic: str):
    """A compiled validator (jsonschema-rs: ~100x the pure-Python one, which capped producers at ~2k events/s)."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(schema(topic))


def violations(topic: str, event: Any) -> list[str]:
    """Human-readable schema violations of ``event`` (empty when it is valid)."""
    check = validator(topic)
    if check.is_valid(event):
        return []
    return [f"{'/'.join(map(str, e.instance_path)) or '<event>'}: {e.message}" for e in check.iter_errors(event)]
