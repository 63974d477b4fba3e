"""The local dashboard page server: the Grafana dashboards of ``k8s/grafana/dashboards`` drawn in the browser.

``python -m twitch_pipeline.dashboards.server`` (the platform's ``dashboards`` component runs it) serves

* ``/`` the dashboards, ``/d/<uid>`` one dashboard, ``/catalog`` the data catalog;
* ``/api/dashboards/<uid>`` the dashboard JSON as Grafana reads it, ``/api/variables/<uid>`` the options of
  its template variables, ``/api/query`` one panel's targets expanded (macros, variables, interval) and run;
* ``/static/…`` the page's script and plotly.js from the installed ``plotly`` package (no CDN).

The browser never sends SQL: it names a dashboard and a panel, and the server expands that panel's own
queries. Every text reaches the page as data (JSON, or HTML-escaped in the catalog) and a Content Security
Policy forbids inline scripts, so a chat line or a stream title holding ``<script>`` shows as text.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twitch_pipeline.dashboards import catalog_page
from twitch_pipeline.dashboards.collector import Collector
from twitch_pipeline.dashboards.macros import MacroError
from twitch_pipeline.dashboards.model import context_for, load_dashboards, panel, panel_sql, run_query, variable_options
from twitch_pipeline.settings import Settings, load_settings

LOG = logging.getLogger("twitch_pipeline.dashboards")
STATIC = Path(str(files("twitch_pipeline.dashboards") / "static"))
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8"}
# plotly.js compiles some number formatters with Function(); inline scripts stay forbidden.
CSP = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'"


@lru_cache(maxsize=1)
def plotly_js() -> bytes:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def layout() -> str:
    return (STATIC / "layout.html").read_text(encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    server: "DashboardServer"

    def log_message(self, fmt: str, *args: Any) -> None:
        LOG.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _page(self, title: str, body: str) -> None:
        self._send(200, layout().replace("{title}", title).replace("{body}", body).encode(), "text/html; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if not parts:
                self._page("Dashboards", "<h1>Dashboards</h1><ul id='dashboard-list' class='index'></ul>")
            elif parts == ["favicon.ico"]:
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif parts == ["healthz"]:
                self._json({"ok": True})
            elif parts[0] == "d" and len(parts) >= 2:
                self._page("Dashboard", "<div id='dashboard' data-uid=''></div>")
            elif parts == ["catalog"]:
                facts = catalog_page.live_facts(self.server.settings, self.server.client)
                self._send(200, catalog_page.render(self.server.settings, facts, layout()).encode(), "text/html; charset=utf-8")
            elif parts == ["api", "dashboards"]:
                self._json([{"uid": uid, "title": b["title"], "description": b.get("description", "")} for uid, b in load_dashboards().items()])
            elif parts[:2] == ["api", "dashboards"] and len(parts) == 3:
                self._json(self._board(parts[2]))
            elif parts[:2] == ["api", "variables"] and len(parts) == 3:
                self._json(variable_options(self.server.client, self._board(parts[2]), int(query["from"]), int(query["to"])))
            elif parts == ["static", "plotly.min.js"]:
                self._send(200, plotly_js(), CONTENT_TYPES[".js"], cache=True)
            elif parts[0] == "static" and len(parts) == 2 and (STATIC / parts[1]).is_file() and parts[1] != "layout.html":
                path = STATIC / parts[1]
                self._send(200, path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            else:
                self._json({"error": f"not found: {url.path}"}, HTTPStatus.NOT_FOUND)
        except KeyError as exc:
            self._json({"error": f"missing or unknown: {exc}"}, HTTPStatus.NOT_FOUND)
        except (ValueError, MacroError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/api/query":
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            self._json(self.server.query(request))
        except KeyError as exc:
            self._json({"error": f"missing or unknown: {exc}"}, HTTPStatus.NOT_FOUND)
        except (ValueError, TypeError, MacroError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)

    def _board(self, uid: str) -> dict[str, Any]:
        boards = load_dashboards()
        if uid not in boards:
            raise KeyError(f"dashboard {uid!r}")
        return boards[uid]


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, settings: Settings, client, address: tuple[str, int] | None = None):
        self.settings, self.client = settings, client
        super().__init__(address or (settings.host, settings.dashboard_port), Handler)

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        """``{uid, panelId, from, to, vars: {name: [values]}, options: {name: [values]}, width}`` → each target's result."""
        board = load_dashboards()[request["uid"]]
        target = panel(board, int(request["panelId"]))
        selected = {str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])] for k, vals in (request.get("vars") or {}).items()}
        options = {str(k): [str(v) for v in vals] for k, vals in (request.get("options") or {}).items()}
        ctx = context_for(board, target, int(request["from"]), int(request["to"]), selected, options, request.get("width"))
        results = [run_query(self.client, sql, ref).as_json() for ref, sql in panel_sql(board, target, ctx)]
        return {"intervalMs": ctx.interval_ms, "results": results}


class LazyClient:
    """A ClickHouse client made on first use: the server starts before `up` has created the database, and
    serves pages (with an error on each panel) while ClickHouse is away."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._client is None:
                from connectors.clickhouse import clickhouse_client

                self._client = clickhouse_client(self.settings)
            return self._client

    def query(self, *args: Any, **kwargs: Any):
        return self._get().query(*args, **kwargs)

    def insert(self, *args: Any, **kwargs: Any):
        return self._get().insert(*args, **kwargs)


def serve(settings: Settings, collect: bool = True) -> None:
    client = LazyClient(settings)
    server = DashboardServer(settings, client)
    stop = threading.Event()

    def shutdown(*_: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if collect:
        threading.Thread(target=Collector(settings, client).run, args=(stop,), name="collector", daemon=True).start()
    LOG.info("dashboards on http://%s:%s/", settings.host, settings.dashboard_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(load_settings())


if __name__ == "__main__":
    main()
