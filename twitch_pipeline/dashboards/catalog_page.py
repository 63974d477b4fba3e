"""The data catalog page, generated from the pipeline catalog (:mod:`connectors.catalog`), the migrations and
the dashboards: every topic and table with its description, columns and types, where it lives, its lineage,
its freshness and row count now, and its latest data-quality results.

Facts that need a running part (row counts, freshness, offsets, quality results) are read when the page is
requested and shown as "unavailable" when that part is down: the catalog itself never depends on them.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import catalog
from connectors.migrations import MIGRATIONS_DIR
from twitch_pipeline.dashboards.model import load_dashboards, panels, tables_in
from twitch_pipeline.settings import Settings

QUALITY_TABLE = "quality_results"
QUALITY_LATEST = "quality_latest"
_CREATE = re.compile(r"((?:^--[^\n]*\n)*)\s*CREATE\s+(TABLE|VIEW|MATERIALIZED VIEW)\s+IF\s+NOT\s+EXISTS\s+(\w+)(.*?);", re.MULTILINE | re.DOTALL | re.IGNORECASE)
# Columns a quality_results table may name its dataset and its time by (it belongs to the data-quality checks).
_DATASET_COLUMNS = ("table_name", "table", "dataset", "target_table", "target", "output", "topic")


@dataclass
class SchemaObject:
    """A table or view a migration creates, with the comment above it and what a view reads."""

    name: str
    kind: str
    doc: str
    reads: set[str] = field(default_factory=set)


def schema_objects(directory: Path = MIGRATIONS_DIR) -> dict[str, SchemaObject]:
    found: dict[str, SchemaObject] = {}
    for path in sorted(directory.glob("*.sql")):
        for comment, kind, name, body in _CREATE.findall(path.read_text(encoding="utf-8")):
            doc = " ".join(line.lstrip("-").strip() for line in comment.strip().splitlines())
            reads = tables_in(body) - {name} if "VIEW" in kind.upper() else set()
            found[name] = SchemaObject(name, kind.upper(), doc, reads)
    return found


def _schema_columns(topic: catalog.Topic) -> list[tuple[str, str, str]]:
    if topic.schema_path is None or not topic.schema_path.is_file():
        return []
    schema = json.loads(topic.schema_path.read_text(encoding="utf-8"))
    columns = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", prop.get("format", ""))
        columns.append((name, " | ".join(kind) if isinstance(kind, list) else str(kind), prop.get("description", "")))
    return columns


def lineage(boards: dict[str, dict[str, Any]] | None = None, objects: dict[str, SchemaObject] | None = None) -> list[tuple[str, str]]:
    """Edges (from, to) between nodes named ``kind:name``: producers → topics → jobs → outputs → tables → dashboards."""
    boards = load_dashboards() if boards is None else boards
    objects = schema_objects() if objects is None else objects
    edges: list[tuple[str, str]] = []
    for topic in catalog.TOPICS:
        for writer in catalog.writers(topic.name):
            kind = "producer" if writer in catalog.PRODUCERS else "job" if writer in {j.name for j in catalog.JOBS} else "consumer"
            edges.append((f"{kind}:{writer}", f"topic:{topic.name}"))
        for reader in catalog.readers(topic.name):
            kind = "job" if reader in {j.name for j in catalog.JOBS} else "consumer"
            edges.append((f"topic:{topic.name}", f"{kind}:{reader}"))
    for out in catalog.OUTPUTS:
        if out.clickhouse:
            edges += [(f"consumer:{name}", f"clickhouse:{out.table}") for name, read in catalog.CONSUMERS.items() if out.name in read]
        if out.iceberg:
            edges += [(f"job:{name}", f"iceberg:{out.table}") for name in catalog.writers(out.name) if name in {j.name for j in catalog.JOBS}]
    for obj in objects.values():
        edges += [(f"clickhouse:{source}", f"clickhouse:{obj.name}") for source in sorted(obj.reads) if source in objects]
    for board in boards.values():
        used = {t for p in panels(board) for target in p.get("targets", []) for t in tables_in(target.get("rawSql", ""))}
        edges += [(f"clickhouse:{t}", f"dashboard:{board['title']}") for t in sorted(used)]
    return list(dict.fromkeys(edges))


@dataclass
class LiveFacts:
    """What the running platform says now; None where a part could not be asked."""

    tables: dict[str, dict[str, Any]] | None = None  # name -> {rows, engine, columns, newest}
    topics: dict[str, tuple[int, int]] | None = None
    quality: dict[str, list[dict[str, Any]]] | None = None  # dataset ("" = unattributed) -> newest rows
    errors: list[str] = field(default_factory=list)


def live_facts(settings: Settings, client) -> LiveFacts:
    facts = LiveFacts()
    try:
        facts.tables = _table_facts(client)
    except Exception as exc:  # noqa: BLE001 - ClickHouse down: the catalog still renders
        facts.errors.append(f"ClickHouse: {_first_line(exc)}")
    if facts.tables is not None and QUALITY_TABLE in facts.tables:
        # The latest result per check when the checks' view exists, else the newest rows of the table.
        source = QUALITY_LATEST if QUALITY_LATEST in facts.tables else QUALITY_TABLE
        try:
            facts.quality = _quality(client, source, facts.tables[source]["columns"])
        except Exception as exc:  # noqa: BLE001 - a table of another part, whatever its shape
            facts.errors.append(f"{QUALITY_TABLE}: {_first_line(exc)}")
    try:
        from twitch_pipeline.dashboards.collector import topic_offsets

        facts.topics = topic_offsets(settings)
    except Exception as exc:  # noqa: BLE001 - Kafka down
        facts.errors.append(f"Kafka: {_first_line(exc)}")
    return facts


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]


def _table_facts(client) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for name, engine, rows in client.query("SELECT name, engine, total_rows FROM system.tables WHERE database = currentDatabase()").result_rows:
        tables[name] = {"engine": engine, "rows": rows, "columns": [], "newest": None}
    for table, name, type_, comment in client.query(
        "SELECT table, name, type, comment FROM system.columns WHERE database = currentDatabase() ORDER BY table, position"
    ).result_rows:
        if table in tables:
            tables[table]["columns"].append((name, type_, comment))
    for out in catalog.OUTPUTS:
        if out.table in tables:
            count, newest = client.query(f"SELECT count(), max({out.event_time}) FROM {out.table}").result_rows[0]
            tables[out.table].update(rows=count, newest=newest if count else None)
    return tables


def _quality(client, table: str, columns: list[tuple[str, str, str]]) -> dict[str, list[dict[str, Any]]]:
    names = [c[0] for c in columns]
    when = next((c[0] for c in columns if c[1].replace("Nullable(", "").startswith("DateTime")), None)
    dataset = next((c for c in _DATASET_COLUMNS if c in names), None)
    order = f" ORDER BY `{when}` DESC" if when else ""
    result = client.query(f"SELECT * FROM {table}{order} LIMIT 500")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in result.result_rows:
        record = dict(zip(result.column_names, row))
        key = str(record.get(dataset, "")) if dataset else ""
        if len(grouped.setdefault(key, [])) < 20:
            grouped[key].append(record)
    return grouped


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _age(newest: Any) -> str:
    if not isinstance(newest, dt.datetime):
        return "no rows"
    newest = newest if newest.tzinfo else newest.replace(tzinfo=dt.timezone.utc)
    seconds = (dt.datetime.now(dt.timezone.utc) - newest).total_seconds()
    text = f"{seconds:.0f} s" if abs(seconds) < 120 else f"{seconds / 60:.0f} min" if abs(seconds) < 7200 else f"{seconds / 3600:.1f} h"
    return f"newest {newest:%Y-%m-%d %H:%M:%S} UTC ({text} ago)"


def _rows(count: int | None) -> str:
    return "" if count is None else f"{count:,} rows"


def _columns_table(columns: list[tuple[str, str, str]]) -> str:
    if not columns:
        return "<p class='muted'>No column list.</p>"
    rows = "".join(f"<tr><td><code>{_e(n)}</code></td><td><code>{_e(t)}</code></td><td>{_e(d)}</td></tr>" for n, t, d in columns)
    return f"<table class='cols'><thead><tr><th>Column</th><th>Type</th><th>Description</th></tr></thead><tbody>{rows}</tbody></table>"


def _quality_html(rows: list[dict[str, Any]] | None) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h4>Latest data-quality results</h4><table class='quality'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(settings: Settings, facts: LiveFacts, layout: str) -> str:
    """The whole page; ``layout`` is the surrounding HTML with ``{title}``, ``{nav}`` and ``{body}`` slots."""
    objects = schema_objects()
    boards = load_dashboards()
    edges = lineage(boards, objects)
    tables = facts.tables or {}
    quality = facts.quality
    sections = []
    if facts.errors:
        sections.append("<div class='notice'>" + "<br>".join(_e(e) for e in facts.errors) + "</div>")
    if facts.tables is not None and quality is None:
        sections.append(f"<p class='muted' id='quality-absent'>No data-quality results yet (table <code>{QUALITY_TABLE}</code> does not exist).</p>")
    nodes = sorted({n for edge in edges for n in edge}, key=lambda n: ("producer topic job consumer clickhouse iceberg dashboard".split().index(n.split(":")[0]), n))
    graph = {"nodes": nodes, "edges": [[nodes.index(a), nodes.index(b)] for a, b in edges]}
    sections.append("<h2>Lineage</h2><p class='muted'>Producers → topics → Flink jobs → outputs → ClickHouse and Iceberg tables → dashboards.</p>"
                    "<div id='lineage' class='lineage'></div>"
                    f"<script id='lineage-data' type='application/json'>{_script_json(graph)}</script>")
    index = []
    # every topic (with its output, if a job writes one there), then the outputs kept in the lake only
    datasets = [(t, next((o for o in catalog.OUTPUTS if o.name == t.name), None)) for t in catalog.TOPICS]
    for topic, out in datasets + [(None, o) for o in catalog.OUTPUTS if o.topic is None]:
        name = topic.name if topic is not None else out.name
        places = [f"Kafka topic <code>{_e(topic.name)}</code> ({_e(topic.cleanup_policy)}, key <code>{_e(topic.key or 'none')}</code>)"] if topic else []
        if out is not None and out.clickhouse:
            places.append(f"ClickHouse table <code>{_e(settings.clickhouse_database)}.{_e(out.table)}</code>")
        if out is not None and out.iceberg:
            places.append(f"Iceberg table <code>{_e(settings.iceberg_catalog)}.{_e(settings.iceberg_namespace)}.{_e(out.table)}</code>")
        now = []
        if facts.topics is not None and topic is not None:
            low, high = facts.topics.get(topic.name, (0, 0))
            now.append(f"Kafka: {high - low:,} records retained (offsets, transaction markers included)" if topic.name in facts.topics else "Kafka: topic not created")
        if out is not None and out.clickhouse and out.table in tables:
            now.append(f"ClickHouse: {tables[out.table]['rows']:,} rows, {_e(_age(tables[out.table]['newest']))}")
        columns = [(c.name, c.type, c.doc) for c in out.columns] if out else _schema_columns(topic)
        writers, readers = catalog.writers(name), catalog.readers(name)
        terminal = "people (terminal topic)" if name in catalog.TERMINAL_TOPICS else "queries of the lake" if topic is None else "nobody yet"
        flow = f"Written by {_e(', '.join(writers) or 'nobody yet')}; read by {_e(', '.join(readers) or terminal)}."
        anchor = f"ds-{name}"
        index.append(f"<li><a href='#{_e(anchor)}'>{_e(name)}</a></li>")
        sections.append(
            f"<section class='dataset' id='{_e(anchor)}'><h3>{_e(name)}</h3><p>{_e(out.doc if out else topic.doc)}</p>"
            f"<p class='where'>{'<br>'.join(places)}</p><p>{flow}</p>"
            f"<p class='now'>{'<br>'.join(now) or 'Live figures unavailable.'}</p>"
            f"{_columns_table(columns)}{_quality_html(quality.get(name) if quality else None)}</section>"
        )
    outputs = {o.table for o in catalog.OUTPUTS}
    for name, facts_of in sorted(tables.items()):
        if name in outputs:
            continue
        obj = objects.get(name)
        anchor = f"ds-{name}"
        index.append(f"<li><a href='#{_e(anchor)}'>{_e(name)}</a></li>")
        reads = f"<p>Reads {_e(', '.join(sorted(obj.reads)))}.</p>" if obj and obj.reads else ""
        sections.append(
            f"<section class='dataset' id='{_e(anchor)}'><h3>{_e(name)}</h3><p>{_e(obj.doc if obj and obj.doc else 'ClickHouse ' + facts_of['engine'])}</p>"
            f"<p class='where'>ClickHouse {'view' if 'View' in facts_of['engine'] else 'table'} <code>{_e(settings.clickhouse_database)}.{_e(name)}</code> ({_e(facts_of['engine'])})</p>{reads}"
            f"<p class='now'>{_rows(facts_of['rows'])}</p>"
            f"{_columns_table(facts_of['columns'])}{_quality_html(quality.get(name) if quality else None)}</section>"
        )
    if quality and "" in quality:
        sections.append(f"<section class='dataset'><h3>Data-quality results</h3>{_quality_html(quality[''])}</section>")
    body = "<h1>Data catalog</h1><ul class='index'>" + "".join(index) + "</ul>" + "".join(sections)
    return layout.replace("{title}", "Data catalog").replace("{body}", body)


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no `</script>` can close it early)."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
