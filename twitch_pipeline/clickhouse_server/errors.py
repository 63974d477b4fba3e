"""ClickHouse-style errors: the ``Code: N. DB::Exception: …`` text, its code and its HTTP status.

Clients branch on the code (``X-ClickHouse-Exception-Code``) and on the HTTP status, so both must be
what a real server sends for the same failure. chDB raises plain ``RuntimeError`` whose text already
holds the server's message; we recover the code and the symbolic name from it.
"""

from __future__ import annotations

import re

# ClickHouse's own mapping (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), keyed by symbolic name.
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403),
    **dict.fromkeys((
        "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
        "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    ), 400),
    **dict.fromkeys((
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION",
        "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE",
    ), 404),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_CHDB_MESSAGE = re.compile(r"Code: (\d+)\. DB::Exception: (.*)", re.DOTALL)
_TRAILING_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")
_TRAILING_VERSION = re.compile(r"\s*\(version [^)]*\)\s*$")


class ClickHouseError(Exception):
    """An error with ClickHouse's code, symbolic name and message (without the ``Code:`` prefix)."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def from_engine(cls, exc: BaseException) -> "ClickHouseError":
        """Parse chDB's exception text; anything unparseable becomes an internal error (code 1001)."""
        text = str(exc)
        match = _CHDB_MESSAGE.search(text)
        if match is None:
            return cls(1001, "STD_EXCEPTION", text.strip() or type(exc).__name__)
        message = _TRAILING_VERSION.sub("", match.group(2).strip())
        name = _TRAILING_NAME.search(message)
        if name is None:
            return cls(int(match.group(1)), "", message)
        return cls(int(match.group(1)), name.group(1), message[: name.start()].rstrip())

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def text(self, version: str) -> str:
        """The response body, as a ClickHouse server writes it."""
        suffix = f" ({self.name})" if self.name else ""
        return f"Code: {self.code}. DB::Exception: {self.message}{suffix} (version {version})\n"


def bad_arguments(message: str) -> ClickHouseError:
    return ClickHouseError(36, "BAD_ARGUMENTS", message)


def not_implemented(message: str) -> ClickHouseError:
    return ClickHouseError(48, "NOT_IMPLEMENTED", message)
