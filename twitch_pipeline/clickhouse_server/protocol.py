"""What one HTTP request asks for, following ClickHouse's HTTP interface.

The statement is the ``query`` URL parameter followed by the body; for an ``INSERT … FORMAT x`` (or
``VALUES``) everything after the format name is row data, streamed to the engine rather than parsed
as SQL. URL parameters are split the way ClickHouse splits them: transport parameters
(``database``, ``query_id``, ``session_id``, …), ``param_<name>`` query parameters, and everything
else, which is a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from twitch_pipeline.clickhouse_server.errors import ClickHouseError

#: Parameters that steer the HTTP exchange itself and are never engine settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "compress", "decompress", "user", "password", "quota_key", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "stacktrace", "enable_http_compression", "http_zlib_compression_level",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "add_http_cors_header", "http_native_compression_disable_checksumming_on_decompress", "max_query_size",
})

#: The longest statement text we buffer looking for where an INSERT's data begins (ClickHouse's max_query_size).
MAX_QUERY_SIZE = 256 * 1024
#: The longest non-INSERT request body we accept as SQL.
MAX_SQL_BODY = 64 * 1024 * 1024

_INSERT_HEAD = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?P<target>.*?)(?:\s+FORMAT\s+(?P<fmt>[A-Za-z_][A-Za-z0-9_]*)|\s+(?P<values>VALUES)\b)",
    re.IGNORECASE | re.DOTALL,
)
_SELECT_IN_TARGET = re.compile(rb"\b(SELECT|WITH)\b", re.IGNORECASE)
_DATA_START = re.compile(rb"[ \t]*(?:\r?\n)?")
_OUTPUT_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/)*", re.DOTALL)


@dataclass
class Statement:
    """One request's work: SQL text, and for inserts with inline data, the data format and stream."""

    sql: str
    insert_format: str | None = None
    data: Iterator[bytes] = field(default_factory=lambda: iter(()))

    @property
    def keyword(self) -> str:
        """The statement's first word, upper-cased (SELECT, INSERT, SET, USE, …)."""
        head = _LEADING_COMMENTS.sub("", self.sql, count=1)
        return head.split(None, 1)[0].upper() if head.strip() else ""

    def output_format(self, default: str) -> str:
        found = _OUTPUT_FORMAT.search(self.sql)
        return found.group(1) if found else default


@dataclass(frozen=True)
class Params:
    """URL parameters split by role."""

    transport: dict[str, str]
    settings: dict[str, str]
    query_params: dict[str, str]

    @classmethod
    def split(cls, params: Mapping[str, str]) -> "Params":
        transport, settings, query_params = {}, {}, {}
        for key, value in params.items():
            if key in TRANSPORT_PARAMS:
                transport[key] = value
            elif key.startswith("param_"):
                query_params[key.removeprefix("param_")] = value
            else:
                settings[key] = value
        return cls(transport, settings, query_params)


def read_statement(query_param: str | None, body: Iterator[bytes]) -> Statement:
    """Build the statement from the ``query`` parameter and the (decoded) body chunks."""
    if query_param is not None:
        head = query_param.encode()
        if _split_insert(head) is not None:
            return _insert_statement(head, body)
        rest = _read_all(body, MAX_SQL_BODY)
        return Statement(_text(head + rest))
    buffer = b""
    for chunk in body:
        buffer += chunk
        split = _split_insert(buffer)
        if split is not None and split[2] < len(buffer) and not buffer.endswith(b"\r"):  # header complete
            return _insert_statement(buffer, body)
        if len(buffer) > MAX_QUERY_SIZE and not buffer.lstrip()[:6].upper().startswith(b"INSERT"):
            break
    buffer += _read_all(body, MAX_SQL_BODY - len(buffer))
    if _split_insert(buffer) is not None:
        return _insert_statement(buffer, iter(()))
    if not buffer.strip():
        raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
    return Statement(_text(buffer))


def _split_insert(text: bytes) -> tuple[bytes, str, int] | None:
    """(``INSERT INTO target``, input format, offset where data starts) if ``text`` is an INSERT with data."""
    match = _INSERT_HEAD.match(text[: MAX_QUERY_SIZE])
    if match is None or _SELECT_IN_TARGET.search(match.group("target")):
        return None
    if match.group("values"):
        return text[: match.end("target")], "Values", match.end("values")
    start = _DATA_START.match(text, match.end()).end()  # type: ignore[union-attr]
    return text[: match.end("target")], match.group("fmt").decode(), start


def _insert_statement(buffer: bytes, body: Iterator[bytes]) -> Statement:
    statement, fmt, start = _split_insert(buffer)  # type: ignore[misc]
    inline = buffer[start:]

    def data() -> Iterator[bytes]:
        if inline:
            yield inline
        yield from body

    return Statement(_text(statement), insert_format=fmt, data=data())


def _read_all(body: Iterator[bytes], limit: int) -> bytes:
    parts, size = [], 0
    for chunk in body:
        size += len(chunk)
        if size > limit:
            raise ClickHouseError(393, "QUERY_IS_TOO_LARGE", f"Query is too large ({size} bytes read, limit {limit})")
        parts.append(chunk)
    return b"".join(parts)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClickHouseError(62, "SYNTAX_ERROR", f"Query is not valid UTF-8: {exc}") from None
