"""The dashboard JSON files (the ones Grafana provisions) and running their panel queries against ClickHouse."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from twitch_pipeline.dashboards.macros import QueryContext, expand, panel_interval_ms
from twitch_pipeline.settings import PROJECT_ROOT

DASHBOARD_DIR = PROJECT_ROOT / "k8s" / "grafana" / "dashboards"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
#: ClickHouse's error code for a table that does not exist (yet): a panel shows "no table" rather than an error.
UNKNOWN_TABLE = 60
DEFAULT_WIDTH_PX = 800


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """uid -> dashboard, in file-name order."""
    boards = {}
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        board["_file"] = path.name
        boards[board["uid"]] = board
    return boards


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves are not panels."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel(board: dict[str, Any], panel_id: int) -> dict[str, Any]:
    for p in panels(board):
        if p["id"] == panel_id:
            return p
    raise KeyError(f"dashboard {board['uid']} has no panel {panel_id}")


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return board.get("templating", {}).get("list", [])


def multi_flags(board: dict[str, Any]) -> dict[str, bool]:
    return {v["name"]: bool(v.get("multi") or v.get("includeAll")) for v in variables(board)}


def tables_in(sql: str) -> set[str]:
    """Table names a query reads (after FROM / JOIN), for skipping panels whose table does not exist yet."""
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w]*)", sql, flags=re.IGNORECASE))


@dataclass(frozen=True)
class Result:
    ref_id: str
    sql: str
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    error: str | None = None
    missing_table: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"refId": self.ref_id, "sql": self.sql, "columns": self.columns, "rows": self.rows, "error": self.error, "missingTable": self.missing_table}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _kind(type_name: str) -> str:
    """time / number / bool / string, from a ClickHouse type name (Nullable and LowCardinality unwrapped)."""
    inner = type_name
    while (wrapped := re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", inner)) is not None:
        inner = wrapped.group(1)
    if inner.startswith(("DateTime", "Date")):
        return "time"
    if inner.startswith(("Int", "UInt", "Float", "Decimal")):
        return "number"
    if inner == "Bool":
        return "bool"
    return "string"


def context_for(board: dict[str, Any], target_panel: dict[str, Any], from_ms: int, to_ms: int,
                selected: dict[str, list[str]], options: dict[str, list[str]], width_px: int | None) -> QueryContext:
    points = int(target_panel.get("maxDataPoints") or width_px or DEFAULT_WIDTH_PX)
    interval = panel_interval_ms(from_ms, to_ms, points, target_panel.get("interval"))
    return QueryContext(from_ms, to_ms, interval, selected, options)


def run_query(client, sql: str, ref_id: str = "A") -> Result:
    try:
        result = client.query(sql)
    except Exception as exc:  # noqa: BLE001 - shown on the panel, as Grafana shows a query error
        code = getattr(exc, "code", None)
        text = str(exc)
        missing = code == UNKNOWN_TABLE or "UNKNOWN_TABLE" in text or "Code: 60." in text
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
        return Result(ref_id, sql, [], [], first[:500], missing)
    names_types = [(name, t.name) for name, t in zip(result.column_names, result.column_types)]
    if not names_types:
        # An empty result comes without its header over HTTP; the panel still needs its columns' kinds.
        try:
            names_types = [(row[0], row[1]) for row in client.query(f"DESCRIBE ({sql})").result_rows]
        except Exception:  # noqa: BLE001 - an empty panel without a header is still an empty panel
            names_types = []
    columns = [{"name": name, "type": type_name, "kind": _kind(type_name)} for name, type_name in names_types]
    rows = [[_jsonable(v) for v in row] for row in result.result_rows]
    return Result(ref_id, sql, columns, rows)


def panel_sql(board: dict[str, Any], target_panel: dict[str, Any], ctx: QueryContext) -> list[tuple[str, str]]:
    """(refId, expanded SQL) of each of the panel's targets."""
    flags = multi_flags(board)
    return [(t.get("refId", "A"), expand(t["rawSql"], ctx, flags)) for t in target_panel.get("targets", []) if not t.get("hide")]


def variable_options(client, board: dict[str, Any], from_ms: int, to_ms: int) -> dict[str, list[str]]:
    """Each query variable's options for the range (a variable whose table is missing has none)."""
    found: dict[str, list[str]] = {}
    ctx = QueryContext(from_ms, to_ms)
    for var in variables(board):
        if var.get("type") == "custom":
            found[var["name"]] = [o.strip() for o in str(var.get("query", "")).split(",") if o.strip()]
            continue
        result = run_query(client, expand(var["query"], ctx))
        found[var["name"]] = [str(row[0]) for row in result.rows if row and row[0] is not None]
    return found
