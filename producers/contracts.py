"""The data contracts of the raw topics: JSON Schemas, timestamp format, event ids, encoding.

The schemas in ``producers/schemas/`` are the source of truth that the Flink jobs of the pipeline are
written against; everything a producer sends as valid must pass them.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any

import orjson

from connectors import catalog
from twitch_pipeline.timestamps import datetime_ms, iso_ms, parse_iso_ms  # noqa: F401  (the contracts' timestamp format)

#: Largest value a consumer must accept; larger values are malformed by contract ("oversized").
MAX_EVENT_BYTES = 64 * 1024

#: Helix's largest page; a poll's stream snapshots carry the time their page was fetched.
HELIX_PAGE = 100


def stream_event_id(stream_id: str, data_retrieved_at: str) -> str:
    """Deterministic id of one stream snapshot: the same snapshot sent twice has the same id."""
    return hashlib.blake2b(f"{stream_id}|{data_retrieved_at}".encode(), digest_size=16).hexdigest()


_MENTION = re.compile(r"(?<![\w@])@(\w{1,25})")


def mentions(text: str) -> list[str]:
    """Logins a chat message mentions with ``@``, lower case, in order, each once."""
    return list(dict.fromkeys(m.lower() for m in _MENTION.findall(text)))


def encode(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (what ``json.dumps(event, ensure_ascii=False, separators=(",", ":"))`` writes). orjson: the
    standard library's encoder was a fifth of the synthetic producer's CPU, which shares the cores with the pipeline."""
    return orjson.dumps(event)


@lru_cache(maxsize=None)
def schema(topic: str) -> dict[str, Any]:
    """The topic's JSON Schema, named by its catalog entry (``producers/schemas/<topic>.schema.json``)."""
    path = catalog.topic(topic).schema_path
    if path is None or not path.is_file():
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
