"""A bounded run that survives kill -9: a durable progress mark, and a restart that resumes after it.

A bounded synthetic run is a pure function of its arguments (seed, start time, event count, fault
fractions): slot n of the run is the same event (or duplicate, or malformed event) every time. So the
mark only has to say how many slots Kafka has acknowledged. The run hands events to librdkafka in chunks
of :data:`CHUNK` slots; after each chunk it flushes (waits until Kafka acknowledged every one of them) and
writes the mark atomically. A restarted run with the same arguments regenerates the slots before the mark
without sending them (the world's and the faults' random streams advance exactly as before) and sends from
the mark on.

Events between the mark and the point where the dead run was killed may have reached Kafka already and are
sent again: valid ones are duplicates the pipeline drops by event_id; malformed ones reach the dead letters a
second time. Each resume therefore records the window of slots it may send twice (``[delivered, intent)``:
``intent`` is written before a chunk is handed over, so no slot at or past it was sent), and the run that
completes counts the malformed events in those windows, so a reconciliation knows the exact bounds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twitch_pipeline.errors import ConfigurationError

#: Slots handed to Kafka between two flushes (and marks); a restart sends at most twice this many again.
CHUNK = 5_000


@dataclass
class Mark:
    run: dict[str, Any]  # the arguments that make the run what it is; a resume must use the same
    delivered: int = 0  # slots Kafka acknowledged, all of them (and everything before)
    intent: int = 0  # no slot at or past this was handed to Kafka
    resumes: int = 0
    windows: list[list[int]] = field(default_factory=list)  # [start, end) of each resume's slots that may go twice
    done: bool = False
    summary: dict[str, Any] | None = None  # the final per-topic summary, once done
    resent_malformed: dict[str, int] = field(default_factory=dict)  # per topic: malformed events sent more than once, at most


class ProgressMark:
    """The mark file of one bounded run (``produce --progress PATH``)."""

    def __init__(self, path: Path, run: dict[str, Any]):
        self.path = path
        try:
            stored = json.loads(path.read_text())
        except FileNotFoundError:
            self.mark = Mark(run=run)
            return
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"--progress: cannot read {path} ({err}); remove it to start the run afresh") from None
        self.mark = Mark(**stored)
        differs = {k: (self.mark.run.get(k), v) for k, v in run.items() if self.mark.run.get(k) != v}
        if differs:
            raise ConfigurationError(f"--progress: {path} belongs to another run ({', '.join(f'{k} was {a}, now {b}' for k, (a, b) in differs.items())}); "
                                     "resume with the same arguments, or remove it to start afresh")

    @property
    def start_ms(self) -> int | None:
        """The simulated start of the run: a resume keeps the first run's (a restart must not pick a new 'now')."""
        return self.mark.run.get("start_ms")

    def begin(self, start_ms: int) -> tuple[int, list[list[int]]]:
        """Record this (re)start; returns (slots to regenerate without sending, windows that may be sent twice)."""
        mark = self.mark
        mark.run.setdefault("start_ms", start_ms)
        if mark.intent > mark.delivered:  # a run died after handing over slots it never saw acknowledged
            mark.resumes += 1
            mark.windows.append([mark.delivered, mark.intent])
        mark.intent = mark.delivered + 2 * CHUNK
        self.save()
        return mark.delivered, [list(w) for w in mark.windows]

    def delivered(self, slots: int) -> None:
        """Every slot before ``slots`` is acknowledged; the next chunk may follow."""
        self.mark.delivered = slots
        self.mark.intent = slots + 2 * CHUNK
        self.save()

    def finish(self, slots: int, summary: dict[str, Any], resent_malformed: dict[str, int]) -> None:
        self.mark.delivered = self.mark.intent = slots
        self.mark.done, self.mark.summary, self.mark.resent_malformed = True, summary, resent_malformed
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(asdict(self.mark), indent=1))
            f.flush()
            os.fsync(f.fileno())  # a mark that claims more than reached the disk would skip events
        tmp.replace(self.path)


def read_mark(path: Path) -> Mark | None:
    """The mark as last written (None before the run wrote one)."""
    try:
        return Mark(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
