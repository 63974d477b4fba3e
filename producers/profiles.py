"""When a broadcaster's unchanged profile is published again, so the enrichment job never forgets it.

The enrichment job joins every stream snapshot with the profile version valid at the snapshot's event time
(``users_versioned`` in flink_jobs/sql/enrich_streams.sql). Its state expires after ``state_ttl_s`` of
processing time without an update for the broadcaster, so a broadcaster offline for longer than that would
come back without profile columns if its profile were published only when it changed. Both sources therefore
publish a broadcaster's latest profile again once ``republish_after_s`` has passed since they last published
it, at the moment the broadcaster is seen live again and before its snapshot, with an event time
(``data_retrieved_at``) no later than the snapshot's: the join looks up the version valid *at* the snapshot's
event time, so a version stamped after it would not be found.

Half the TTL leaves room for a poll interval, a slow job and the 1.5x slack Flink allows itself before
clearing idle state. The horizon is measured in event time, which for a live source is the wall clock;
a bounded synthetic run compresses event time, so it republishes more often than it strictly needs to.
"""

from __future__ import annotations


def republish_after_s(state_ttl_s: float) -> float:
    """Seconds after which a live broadcaster's profile is published again (see the module's docstring)."""
    return state_ttl_s / 2


class PublishedProfiles:
    """When each broadcaster's profile was last published (epoch ms), and whether it is due again."""

    def __init__(self, state_ttl_s: float):
        self.after_ms = int(republish_after_s(state_ttl_s) * 1000)
        self._last: dict[str, int] = {}

    def published(self, user_id: str, at_ms: int) -> None:
        self._last[user_id] = at_ms

    def due(self, user_id: str, now_ms: int) -> bool:
        """True once a published profile has not been published again for the republish horizon."""
        last = self._last.get(user_id)
        return last is not None and now_ms - last >= self.after_ms
