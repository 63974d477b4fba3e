"""ClickHouse's HTTP interface in front of the chDB engine (standard-library threaded HTTP server).

One thread per client connection (HTTP/1.1 keep-alive, as clickhouse-connect's pool expects); the
engine gives each request its own chDB connection, so clients run in parallel. Results are buffered
and sent with a Content-Length, which lets errors always arrive as a proper ClickHouse error response
and lets ``X-ClickHouse-Summary`` carry final counters, like ``wait_end_of_query=1`` on a server.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

from twitch_pipeline.clickhouse_server import codecs
from twitch_pipeline.clickhouse_server.engine import Engine, Outcome
from twitch_pipeline.clickhouse_server.errors import (
    ClickHouseError,
    bad_arguments,
    not_implemented,
)
from twitch_pipeline.clickhouse_server.protocol import Params, Statement, read_statement

log = logging.getLogger("twitch_pipeline.clickhouse_server")

READ_CHUNK = 1 << 20
#: Seconds an idle keep-alive connection (or a stalled upload) may hold a thread.
SOCKET_TIMEOUT_S = 300
OK_PATHS = ("/ping", "/replicas_status")


@dataclass(frozen=True)
class Credentials:
    """The one user the embedded server knows; an empty password accepts any (like a fresh ClickHouse)."""

    user: str = "default"
    password: str = ""

    def check(self, user: str, password: str) -> None:
        if user != self.user or not hmac.compare_digest(password.encode(), self.password.encode()):
            raise ClickHouseError(516, "AUTHENTICATION_FAILED", f"{user}: Authentication failed: password is incorrect, or there is no user with such name.")


def content_type(fmt: str) -> str:
    name = fmt.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.startswith(("native", "rowbinary", "parquet", "arrow", "orc", "avro", "protobuf", "msgpack")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive threads must not block shutdown; in-flight work is awaited instead
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], engine: Engine, credentials: Credentials):
        super().__init__(address, Handler)
        self.engine = engine
        self.credentials = credentials
        self.display_name = socket.gethostname()
        self._in_flight = 0
        self._idle = threading.Condition()

    def track(self, delta: int) -> None:
        with self._idle:
            self._in_flight += delta
            self._idle.notify_all()

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-response is routine; anything else goes to the log with its traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.exception("error while serving %s", client_address[0])

    def drain(self, timeout_s: float) -> bool:
        """Wait until no request is being served (after ``shutdown`` stopped accepting new ones)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse-chDB"
    timeout = SOCKET_TIMEOUT_S
    server: ClickHouseHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK (~40 ms per request on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - URLs can carry passwords: never log them
        pass

    # -- request ------------------------------------------------------------------------------------
    def _serve(self) -> None:
        self.server.track(+1)
        self._body_done = False
        try:
            self._route()
        finally:
            self.server.track(-1)

    def _route(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        has_body = self.headers.get("Content-Length", "0") != "0" or "chunked" in self.headers.get("Transfer-Encoding", "")
        if url.path in OK_PATHS or (url.path in ("", "/") and "query" not in params and not has_body):
            self._drain()
            self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            self._authenticate(params)
            outcome, fmt, tz = self._run(params)
        except ClickHouseError as err:
            self._fail(err, query_id)
            return
        except Exception as exc:  # noqa: BLE001 - any other failure is still answered as a ClickHouse error
            log.exception("internal error")
            self._fail(ClickHouseError(1001, "STD_EXCEPTION", f"{type(exc).__name__}: {exc}"), query_id)
            return
        headers = {
            "Content-Type": content_type(fmt),
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": tz,
            "X-ClickHouse-Summary": json.dumps(outcome.summary(), separators=(",", ":")),
        }
        if not self._body_done:
            self.close_connection = True  # an unread body tail must not be taken for the next request
        body = outcome.body
        encoding = self._response_encoding(params)
        if encoding and body:
            body = codecs.encode(bytes(body), encoding)
            headers["Content-Encoding"] = encoding
        self._reply(200, body, headers)

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User") or params.get("user", "")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password", "")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                raise ClickHouseError(516, "AUTHENTICATION_FAILED", "Malformed Basic authorization header") from None
        self.server.credentials.check(user or "default", password)

    def _run(self, params: dict[str, str]) -> tuple[Outcome, str, str]:
        split = Params.split(params)
        transport = split.transport
        for flag in ("compress", "decompress"):
            if transport.get(flag, "0") not in ("0", ""):
                raise not_implemented(f"'{flag}=1' (ClickHouse's own block compression) is not supported by the embedded server; use HTTP Content-Encoding/Accept-Encoding")
        if "multipart/form-data" in self.headers.get("Content-Type", ""):
            raise not_implemented("multipart/form-data requests (external data) are not supported by the embedded server")
        body = codecs.decode(self._body(), self.headers.get("Content-Encoding", ""))
        statement = read_statement(transport.get("query"), body)
        default_format = transport.get("default_format") or "TabSeparated"
        engine = self.server.engine
        with engine.connection(transport.get("session_id", ""), transport.get("session_timeout", ""), transport.get("session_check") == "1") as conn:
            conn.prepare(transport.get("database") or conn.session_database, split.settings)
            outcome = self._execute(conn, statement, default_format, split.query_params)
            tz = conn.applied.get("session_timezone") or engine.timezone
        return outcome, statement.output_format(default_format) if not statement.insert_format else default_format, tz

    @staticmethod
    def _execute(conn, statement: Statement, default_format: str, query_params: dict[str, str]) -> Outcome:
        if statement.insert_format:
            return conn.insert(statement.sql, statement.insert_format, statement.data)
        return conn.execute(statement.sql, default_format, query_params, statement.keyword)

    def _response_encoding(self, params: dict[str, str]) -> str | None:
        if params.get("enable_http_compression", "1") in ("0", "false"):
            return None
        return codecs.choose_encoding(self.headers.get("Accept-Encoding", ""))

    def _body(self) -> Iterator[bytes]:
        """The raw request body as chunks (Content-Length or chunked transfer encoding)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            yield from self._chunked()
        else:
            try:
                remaining = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise bad_arguments("Invalid Content-Length") from None
            while remaining > 0:
                data = self.rfile.read(min(remaining, READ_CHUNK))
                if not data:
                    raise ClickHouseError(210, "NETWORK_ERROR", "Client closed the connection before sending the whole body")
                remaining -= len(data)
                yield data
        self._body_done = True

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise bad_arguments("Malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            while size > 0:
                data = self.rfile.read(min(size, READ_CHUNK))
                if not data:
                    raise ClickHouseError(210, "NETWORK_ERROR", "Client closed the connection mid-chunk")
                size -= len(data)
                yield data
            self.rfile.readline(16)

    def _drain(self) -> None:
        if not self._body_done:
            for _ in self._body():
                pass

    # -- response -----------------------------------------------------------------------------------
    def _fail(self, err: ClickHouseError, query_id: str) -> None:
        if err.http_status >= 500:
            log.warning("query %s failed: code %s %s", query_id, err.code, err.name)
        if not self._body_done:
            self.close_connection = True  # the unread rest of the body would be taken for the next request
        text = err.text(self.server.engine.version).encode()
        self._reply(err.http_status, text, {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(err.code),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": "TabSeparated",
            "X-ClickHouse-Timezone": self.server.engine.timezone,
        })

    def _reply(self, status: int, body: bytes | memoryview, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", self.server.display_name)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Keep-Alive", f"timeout={SOCKET_TIMEOUT_S}")
        self.end_headers()
        self.wfile.write(body)
