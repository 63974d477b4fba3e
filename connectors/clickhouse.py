"""ClickHouse clients configured from the settings: the one way the project reaches ClickHouse.

Embedded (chDB behind our HTTP server) or external server, the code is the same: clickhouse-connect
over HTTP(S), with user, password, database and TLS from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings


@dataclass(frozen=True)
class Endpoint:
    """Where ClickHouse listens and who we are there (the password only ever lives here, never in a URL)."""

    secure: bool
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def interface(self) -> str:
        return "https" if self.secure else "http"

    def dsn(self) -> str:
        """A DSN ``clickhouse_connect.get_client(dsn=…)`` accepts; the password is left out on purpose."""
        return f"{self.interface}://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.database, safe='')}"


def endpoint(settings: Settings) -> Endpoint:
    """Parse the configured URL; user/password embedded in it are used only when the settings leave them at default."""
    url = urlsplit(settings.clickhouse_http_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise PlatformError(
            f"TWITCH_PIPELINE_CLICKHOUSE_URL must look like http(s)://host:port (got scheme {url.scheme!r}); "
            "it is ClickHouse's HTTP interface, not the native protocol"
        )
    secure = settings.clickhouse_secure or url.scheme == "https"
    try:
        port = url.port or (8443 if secure else 8123)
    except ValueError:
        raise PlatformError("TWITCH_PIPELINE_CLICKHOUSE_URL has an invalid port") from None
    user = settings.clickhouse_user
    if url.username and user == "default":
        user = unquote(url.username)
    password = settings.clickhouse_password or unquote(url.password or "")
    return Endpoint(secure, url.hostname, port, user, password, settings.clickhouse_database)


def clickhouse_client(settings: Settings, database: str | None = None, **kwargs: Any):
    """A clickhouse-connect client for the configured ClickHouse.

    ``database`` defaults to the project's database; pass ``""`` (the server's default database) for
    work that must run before that database exists (migrations create it). Other keyword arguments go
    to ``get_client``. No HTTP session is opened unless asked for (``session_id=…``): ClickHouse runs
    one query at a time per session, so a session-less client can be shared between threads.
    """
    import clickhouse_connect

    ep = endpoint(settings)
    return clickhouse_connect.get_client(
        interface=ep.interface,
        host=ep.host,
        port=ep.port,
        username=ep.user,
        password=ep.password,
        database=ep.database if database is None else database,
        **{"autogenerate_session_id": False, **kwargs},
    )
