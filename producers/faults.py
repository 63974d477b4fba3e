"""Injected faults: duplicates and malformed events, in exact proportions.

Downstream deduplication and dead-letter paths are only tested if the input really contains
duplicates and garbage. A bounded run of N events sends exactly ``round(N * duplicates)``
duplicates and ``round(N * malformed)`` malformed events at random positions (selection sampling:
every slot draws against what is left to place, so the totals are exact and the run stays a stream);
a continuous run draws each slot independently with those probabilities.
"""

from __future__ import annotations

import json
import random
from typing import Any

from producers.contracts import MAX_EVENT_BYTES, encode

UNIQUE, DUPLICATE, MALFORMED = "unique", "duplicate", "malformed"

MALFORMED_KINDS = ("invalid_json", "wrong_types", "missing_fields", "invalid_utf8", "oversized")

# The free-text field of each topic: where an oversized event puts its padding.
_TEXT_FIELD = {"game_streams": "title", "twitch_users": "description", "twitch_games": "name", "chat_messages": "text"}


class FaultPlan:
    """Decides what each sent slot carries: a new valid event, a duplicate or a malformed event."""

    def __init__(self, rng: random.Random, total: int | None, duplicates: float, malformed: float):
        for name, value in (("duplicates", duplicates), ("malformed", malformed)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"--{name} must be a fraction in [0, 1), got {value}")
        if duplicates + malformed >= 1.0:
            raise ValueError(f"--duplicates + --malformed must stay below 1 (got {duplicates + malformed})")
        self.rng = rng
        self.duplicates = duplicates
        self.malformed = malformed
        self.remaining = total
        if total is not None:
            self.left_duplicates = round(total * duplicates)
            self.left_malformed = round(total * malformed)
            excess = self.left_duplicates + self.left_malformed - max(total - 1, 0)  # the first slot is always valid
            if excess > 0:
                self.left_malformed -= min(excess, self.left_malformed)
                self.left_duplicates -= max(0, self.left_duplicates + self.left_malformed - max(total - 1, 0))

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def next(self, can_fault: bool) -> str:
        """The kind of the next slot; ``can_fault`` is false while there is nothing to repeat or corrupt."""
        if self.remaining is None:
            if not can_fault:
                return UNIQUE
            u = self.rng.random()
            return DUPLICATE if u < self.duplicates else MALFORMED if u < self.duplicates + self.malformed else UNIQUE
        if self.remaining <= 0:
            raise RuntimeError("fault plan exhausted: the bounded run has sent all its events")
        faults_left = self.left_duplicates + self.left_malformed
        slots = self.remaining - (0 if can_fault else faults_left)
        u = self.rng.random() * slots
        self.remaining -= 1
        if can_fault and u < self.left_duplicates:
            self.left_duplicates -= 1
            return DUPLICATE
        if can_fault and u < faults_left:
            self.left_malformed -= 1
            return MALFORMED
        return UNIQUE


def malformed_value(rng: random.Random, topic: str, event: dict[str, Any]) -> tuple[str, bytes]:
    """A broken variant of a valid ``event``: (kind, value bytes). Every kind breaks the contract."""
    kind = rng.choice(MALFORMED_KINDS)
    return kind, _BREAKERS[kind](rng, topic, dict(event))


def _invalid_json(rng: random.Random, topic: str, event: dict[str, Any]) -> bytes:
    raw = encode(event)
    return raw[: rng.randrange(1, len(raw) - 1)]  # no proper prefix of a JSON object is JSON


def _wrong_types(rng: random.Random, topic: str, event: dict[str, Any]) -> bytes:
    for field in rng.sample(sorted(event), k=min(2, len(event))):
        event[field] = _other_type(event[field])
    return encode(event)


def _other_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,}"  # "12,345": a formatted count, the classic
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return ",".join(json.dumps(v) for v in value)
    return 0


def _missing_fields(rng: random.Random, topic: str, event: dict[str, Any]) -> bytes:
    for field in rng.sample(sorted(event), k=rng.randint(1, 2)):
        del event[field]
    return encode(event)


def _invalid_utf8(rng: random.Random, topic: str, event: dict[str, Any]) -> bytes:
    raw = encode(event)
    at = raw.index(b'":"') + 3  # inside the first string value
    return raw[:at] + rng.choice((b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80")) + raw[at:]


def _oversized(rng: random.Random, topic: str, event: dict[str, Any]) -> bytes:
    field = _TEXT_FIELD.get(topic) or next(k for k, v in event.items() if isinstance(v, str))
    event[field] = "A" * rng.randint(MAX_EVENT_BYTES + 1, 3 * MAX_EVENT_BYTES)
    return encode(event)


_BREAKERS = {
    "invalid_json": _invalid_json,
    "wrong_types": _wrong_types,
    "missing_fields": _missing_fields,
    "invalid_utf8": _invalid_utf8,
    "oversized": _oversized,
}
