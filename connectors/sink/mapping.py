"""Which Flink output topic goes to which ClickHouse table: derived from :mod:`connectors.catalog`.

The table's columns are read from ClickHouse at start, so a mapping holds only what the schema cannot
tell: the event-time column used to measure freshness (event time → visible in ClickHouse).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors import catalog
from twitch_pipeline.errors import ConfigurationError
from twitch_pipeline.settings import Settings


@dataclass(frozen=True)
class TableMapping:
    topic: str
    table: str
    event_time: str  # a DateTime64 column of the table; newest value per batch → freshness


#: Every output the catalog marks as loaded into ClickHouse.
MAPPINGS: tuple[TableMapping, ...] = tuple(TableMapping(o.name, o.table, o.event_time) for o in catalog.sink_outputs())


def selected_mappings(settings: Settings, mappings: tuple[TableMapping, ...] = MAPPINGS) -> tuple[TableMapping, ...]:
    """The mappings named by ``sink_topics`` (all of them when it is empty); an unknown name is an error."""
    wanted = [t.strip() for t in settings.sink_topics.split(",") if t.strip()]
    if not wanted:
        return mappings
    by_topic = {m.topic: m for m in mappings}
    unknown = [t for t in wanted if t not in by_topic]
    if unknown:
        raise ConfigurationError(
            f"TWITCH_PIPELINE_SINK_TOPICS names unmapped topics {', '.join(unknown)}; "
            f"mapped: {', '.join(by_topic)} (declare it as an output in connectors/catalog.py)"
        )
    return tuple(by_topic[t] for t in dict.fromkeys(wanted))
