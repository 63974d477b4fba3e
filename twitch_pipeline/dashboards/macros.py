"""Grafana's query interpolation for the ClickHouse data source, done the way Grafana and the plugin do it.

A panel's ``rawSql`` goes through three steps, in Grafana's order:

1. ``$__conditionalAll(cond, $var)`` (the plugin's front end, before variables): ``1=1`` when the
   variable selects All (or nothing), else ``cond``.
2. Template variables (Grafana): ``$var``, ``${var}``, ``${var:format}`` and the built-ins
   ``$__from``/``$__to`` (epoch ms), ``$__interval``, ``$__interval_ms``.
3. The plugin's time macros (its back end), only those stable across plugin 4.x:
   ``$__timeFilter(c)``, ``$__fromTime``, ``$__toTime``, ``$__timeInterval(c)``, ``$__interval_s``.

Anything else starting with ``$__`` is refused: a dashboard using a macro this module does not know
would render differently here and in Grafana.

The interval is Grafana's: ``roundInterval((to - from) / maxDataPoints)``, raised to the panel's
minimum interval; maxDataPoints defaults to the panel's width in pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

#: The value a variable holds when "All" is selected (Grafana's own marker).
ALL = "$__all"

# Grafana's interval ladder (@grafana/data rangeutil.roundInterval): (upper bound, rounded value), ms.
_LADDER: tuple[tuple[int, int], ...] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
    (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
)
_YEAR_MS = 31536000000
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000, "y": _YEAR_MS}


class MacroError(ValueError):
    """A query uses a macro or variable this renderer cannot expand the way Grafana would."""


def round_interval(interval_ms: float) -> int:
    for bound, value in _LADDER:
        if interval_ms < bound:
            return value
    return _YEAR_MS


def parse_duration_ms(text: str) -> int:
    """``"1m"`` → 60000; Grafana's interval strings (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``, ``y``; bare = seconds)."""
    match = re.fullmatch(r"\s*>?\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*", text or "")
    if match is None:
        raise MacroError(f"invalid interval {text!r}: use a number and a unit such as 30s, 1m, 1h")
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]


def format_interval(ms: int) -> str:
    """Grafana's text form of an interval (``$__interval``): the largest unit that divides it."""
    for unit in ("y", "w", "d", "h", "m", "s"):
        if ms >= _UNIT_MS[unit] and ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def panel_interval_ms(from_ms: int, to_ms: int, max_data_points: int, min_interval: str | None = None) -> int:
    interval = round_interval((to_ms - from_ms) / max(1, max_data_points))
    if min_interval:
        interval = max(interval, parse_duration_ms(min_interval))
    return interval


@dataclass(frozen=True)
class QueryContext:
    """What one panel query is expanded for: the time range, the interval and the variables' selections."""

    from_ms: int
    to_ms: int
    interval_ms: int = 1000
    #: variable name -> selected values (``[ALL]`` or ``[]`` for All)
    variables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: variable name -> every option (what All stands for where a variable is used outside $__conditionalAll)
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def interval_s(self) -> int:
        return max(1, self.interval_ms // 1000)

    def is_all(self, name: str) -> bool:
        selected = list(self.variables.get(name, []))
        return not selected or ALL in selected

    def values(self, name: str) -> list[str]:
        return list(self.options.get(name, [])) if self.is_all(name) else list(self.variables[name])


def _call_end(sql: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at`` (quotes respected)."""
    depth, i = 0, open_at
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            end = i + 1
            while end < len(sql) and sql[end] != ch:
                end += 2 if sql[end] == "\\" else 1
            i = end
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise MacroError(f"unbalanced parentheses after {sql[max(0, open_at - 20):open_at + 1]!r}")


def _split_args(text: str) -> list[str]:
    args, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return args


def _replace_calls(sql: str, name: str, expand) -> str:
    """Replace every ``name(args…)`` (``name`` includes ``$__``) by ``expand(args)``."""
    pattern = re.compile(re.escape(name) + r"\s*\(")
    out, pos = [], 0
    while (match := pattern.search(sql, pos)) is not None:
        close = _call_end(sql, match.end() - 1)
        out.append(sql[pos:match.start()])
        out.append(expand(_split_args(sql[match.end():close])))
        pos = close + 1
    out.append(sql[pos:])
    return "".join(out)


def _variable_name(ref: str) -> str:
    match = re.fullmatch(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}", ref.strip())
    if match is None:
        raise MacroError(f"$__conditionalAll needs a variable as its second argument, got {ref!r}")
    return match.group(1) or match.group(2)


def expand_conditional_all(sql: str, ctx: QueryContext) -> str:
    def expand(args: list[str]) -> str:
        if len(args) < 2:
            raise MacroError("$__conditionalAll takes (condition, $variable)")
        condition, ref = ",".join(args[:-1]), args[-1]
        return "1=1" if ctx.is_all(_variable_name(ref)) else condition

    return _replace_calls(sql, "$__conditionalAll", expand)


def _sql_string(value: str) -> str:
    # Grafana's singlequote format escapes quotes only; ClickHouse also reads backslash escapes, so a value
    # ending in a backslash (game names are user content) would break out of the literal: escape both.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _format(values: list[str], fmt: str | None, multi: bool) -> str:
    if fmt == "singlequote" or (fmt is None and multi):
        return ",".join(_sql_string(v) for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    if fmt in (None, "csv", "raw"):
        return ",".join(values)
    raise MacroError(f"variable format {fmt!r} is not supported here: use singlequote, doublequote, csv or raw")


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def interpolate_variables(sql: str, ctx: QueryContext, multi: Mapping[str, bool] | None = None) -> str:
    """Template variables and Grafana's built-ins; ``$__…`` names that are plugin macros are left alone."""
    builtins = {"__from": str(ctx.from_ms), "__to": str(ctx.to_ms), "__interval": format_interval(ctx.interval_ms),
                "__interval_ms": str(ctx.interval_ms)}
    multi = multi or {}

    def replace(match: re.Match) -> str:
        name, fmt = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), None)
        if name in builtins:
            return builtins[name]
        if name in ctx.variables or name in ctx.options:
            return _format(ctx.values(name), fmt, multi.get(name, False) or ctx.is_all(name))
        return match.group(0)

    return _VARIABLE.sub(replace, sql)


def expand_time_macros(sql: str, ctx: QueryContext) -> str:
    from_s, to_s = ctx.from_ms // 1000, ctx.to_ms // 1000

    def one_column(name: str, args: list[str]) -> str:
        if len(args) != 1 or not args[0]:
            raise MacroError(f"{name} takes exactly one column")
        return args[0]

    sql = _replace_calls(sql, "$__timeFilter", lambda a: f"{(c := one_column('$__timeFilter', a))} >= toDateTime({from_s}) AND {c} <= toDateTime({to_s})")
    sql = _replace_calls(sql, "$__timeInterval", lambda a: f"toStartOfInterval(toDateTime({one_column('$__timeInterval', a)}), INTERVAL {ctx.interval_s} second)")
    sql = re.sub(r"\$__fromTime(?!\w)", f"toDateTime({from_s})", sql)
    sql = re.sub(r"\$__toTime(?!\w)", f"toDateTime({to_s})", sql)
    sql = re.sub(r"\$__interval_s(?!\w)", str(ctx.interval_s), sql)
    leftover = re.search(r"\$__\w+", sql)
    if leftover:
        raise MacroError(f"{leftover.group(0)} is not one of the macros stable across the ClickHouse plugin's 4.x releases")
    return sql


def expand(sql: str, ctx: QueryContext, multi: Mapping[str, bool] | None = None) -> str:
    """A panel's rawSql as the ClickHouse plugin sends it to ClickHouse."""
    return expand_time_macros(interpolate_variables(expand_conditional_all(sql, ctx), ctx, multi), ctx)


def unknown_variables(sql: str, known: set[str]) -> set[str]:
    """Variables a query references that its dashboard does not define (built-ins and macros excepted)."""
    found = {m.group(1) or m.group(3) for m in _VARIABLE.finditer(sql)}
    return {name for name in found if not name.startswith("__") and name not in known}
