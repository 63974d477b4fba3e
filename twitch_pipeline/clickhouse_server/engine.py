"""The chDB engine behind the HTTP server: connections, HTTP sessions and per-request state.

chDB lets one process open many connections on the same data directory; they share the engine and
run queries in parallel (the GIL is released), while each connection keeps its own current database,
settings and temporary tables — exactly what a ClickHouse *session* is. So:

* a request with ``session_id`` gets that session's own connection (kept until the session times out);
  like ClickHouse, a session serves one query at a time (``SESSION_IS_LOCKED`` otherwise);
* a request without a session borrows a pooled connection.

Before each statement the connection is brought to the request's database and settings (only the
differences are applied, with ``SET … = DEFAULT`` undoing what the previous request changed).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from chdb.state.sqlitelike import Connection

from twitch_pipeline.clickhouse_server.errors import ClickHouseError

#: Idle pooled connections kept for reuse; more are opened on demand and closed when returned.
POOL_SIZE = 8
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0


@dataclass
class Outcome:
    """A finished statement: its output and the counters for ``X-ClickHouse-Summary``."""

    body: memoryview | bytes = b""
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, str]:
        # ClickHouse sends every counter as a string.
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows),
            "result_rows": str(self.result_rows),
            "result_bytes": str(len(self.body)),
            "elapsed_ns": str(int(self.elapsed_s * 1e9)),
        }


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class EngineConnection:
    """One chDB connection and the state we put on it (so the next request can reset it cheaply)."""

    def __init__(self, path: str, session: bool = False):
        self._conn = Connection(path)
        self.session = session  # a session's SET and USE outlive the request; a pooled connection's do not
        self.database = "default"
        self.applied: dict[str, str] = {}  # settings we changed from the connection's defaults
        self.session_settings: dict[str, str] = {}
        self.session_database = "default"
        self._baseline = self._changed_settings()

    def _raw(self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None):
        try:
            return self._conn.query(sql, fmt, params=dict(params or {}))
        except Exception as exc:  # noqa: BLE001 - chDB raises RuntimeError/ChdbError with ClickHouse's text
            raise ClickHouseError.from_engine(exc) from None

    def _changed_settings(self) -> dict[str, str]:
        out = self._raw("SELECT name, value FROM system.settings WHERE changed AND name != 'database'", "JSONCompactEachRow")
        return {name: value for name, value in (json.loads(line) for line in out.bytes().splitlines() if line)}

    def prepare(self, database: str, settings: Mapping[str, str]) -> None:
        """Bring the connection to this request's database and settings."""
        wanted = {**self.session_settings, **settings}
        for name in [n for n in self.applied if n not in wanted]:
            self._raw(f"SET {name} = DEFAULT")
            del self.applied[name]
        for name, value in wanted.items():
            if self.applied.get(name) != value:
                if not name.replace("_", "").isalnum():
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
                self._raw(f"SET {name} = {quote(value)}")
                self.applied[name] = value
        if database != self.database:
            self._raw(f"USE {quote_identifier(database)}")
            self.database = database

    def execute(self, sql: str, fmt: str, params: Mapping[str, str], keyword: str) -> Outcome:
        began = time.monotonic()
        result = self._raw(sql, fmt, params)
        outcome = Outcome(
            body=result.bytes(),
            read_rows=result.storage_rows_read(),
            read_bytes=result.storage_bytes_read(),
            written_rows=result.rows_written(),
            written_bytes=result.bytes_written(),
            result_rows=result.rows_read(),
            elapsed_s=time.monotonic() - began,
        )
        if keyword == "SET":
            self._remember_set()
        elif keyword == "USE":
            self.database = self.scalar("SELECT currentDatabase()")
            if self.session:
                self.session_database = self.database
        return outcome

    def _remember_set(self) -> None:
        """A SET statement changed settings: track them (and keep them for the session, if any)."""
        for name, value in self._changed_settings().items():
            if self._baseline.get(name) != value and self.applied.get(name) != value:
                self.applied[name] = value
                if self.session:
                    self.session_settings[name] = value

    def insert(self, sql: str, fmt: str, data: Iterator[bytes]) -> Outcome:
        """Stream row data in ``fmt`` into ``INSERT INTO …`` (no FORMAT clause)."""
        began = time.monotonic()
        try:
            inserter = self._conn.send_insert(sql, fmt)
        except Exception as exc:  # noqa: BLE001
            raise ClickHouseError.from_engine(exc) from None
        try:
            for chunk in data:
                inserter.append(chunk)
            result = inserter.finish()
        except ClickHouseError:
            inserter.cancel()
            raise
        except Exception as exc:  # noqa: BLE001
            inserter.cancel()
            raise ClickHouseError.from_engine(exc) from None
        return Outcome(written_rows=result.rows_written, written_bytes=result.bytes_written, elapsed_s=time.monotonic() - began)

    def scalar(self, sql: str) -> str:
        return self._raw(sql).bytes().decode().strip()

    def close(self) -> None:
        self._conn.close()


@dataclass
class _Session:
    conn: EngineConnection
    timeout_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires: float = 0.0


class Engine:
    """Owns the data directory: a root connection for the server's lifetime, a pool and the sessions."""

    def __init__(self, path: str):
        self.path = path
        self._root = EngineConnection(path)
        self.version = self._root.scalar("SELECT version()")
        self.timezone = self._root.scalar("SELECT timezone()")
        self._lock = threading.Lock()
        self._idle: list[EngineConnection] = []
        self._sessions: dict[str, _Session] = {}
        self._closed = False

    @contextmanager
    def connection(self, session_id: str = "", session_timeout: str = "", session_check: bool = False) -> Iterator[EngineConnection]:
        """A connection for one request (the session's own one when ``session_id`` is given)."""
        if not session_id:
            conn = self._borrow()
            try:
                yield conn
            except ClickHouseError:
                self._give_back(conn)  # a failed statement leaves the connection's tracked state intact
                raise
            except BaseException:
                conn.close()  # e.g. the client went away mid-insert: do not reuse what we cannot vouch for
                raise
            self._give_back(conn)
            return
        session = self._session(session_id, session_timeout, session_check)
        if not session.lock.acquire(blocking=False):
            raise ClickHouseError(373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client")
        try:
            yield session.conn
        finally:
            session.expires = time.monotonic() + session.timeout_s
            session.lock.release()

    def _borrow(self) -> EngineConnection:
        with self._lock:
            if self._closed:
                raise ClickHouseError(210, "NETWORK_ERROR", "Server is shutting down")
            if self._idle:
                return self._idle.pop()
        return EngineConnection(self.path)

    def _give_back(self, conn: EngineConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def _session(self, session_id: str, timeout: str, check: bool) -> _Session:
        try:
            timeout_s = min(float(timeout), MAX_SESSION_TIMEOUT_S) if timeout else DEFAULT_SESSION_TIMEOUT_S
        except ValueError:
            raise ClickHouseError(36, "BAD_ARGUMENTS", f"Invalid session timeout: '{timeout}'") from None
        with self._lock:
            if self._closed:
                raise ClickHouseError(210, "NETWORK_ERROR", "Server is shutting down")
            self._expire_sessions()
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise ClickHouseError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                session = self._sessions[session_id] = _Session(EngineConnection(self.path, session=True), timeout_s)
            session.timeout_s = timeout_s
            session.expires = time.monotonic() + timeout_s
            return session

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if session.expires < now and session.lock.acquire(blocking=False):
                del self._sessions[sid]
                session.conn.close()

    def close(self) -> None:
        """Close every connection; the root one last, which shuts the engine down cleanly."""
        with self._lock:
            self._closed = True
            conns = self._idle + [s.conn for s in self._sessions.values()]
            self._idle, self._sessions = [], {}
        for conn in conns:
            conn.close()
        self._root.close()
