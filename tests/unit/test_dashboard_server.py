"""The page server's HTTP surface with an in-memory ClickHouse stand-in (the real one is in
tests/integration/test_dashboards.py): panels are addressed by dashboard and id, never by SQL; static files
come from the package and plotly; every response carries the Content Security Policy."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from twitch_pipeline.dashboards.server import CSP, DashboardServer
from twitch_pipeline.settings import load_settings


class FakeClient:
    def __init__(self):
        self.queries: list[str] = []

    def query(self, sql: str):
        self.queries.append(sql)
        if "chat_" in sql:  # as ClickHouse answers before the chat pipeline has created its tables
            raise RuntimeError("Code: 60. DB::Exception: Unknown table expression identifier 'chat_minute_stats'. (UNKNOWN_TABLE)")
        return SimpleNamespace(column_names=["game_name"], column_types=[SimpleNamespace(name="LowCardinality(String)")], result_rows=[("Chess",), ("Go",)])


@pytest.fixture()
def server():
    client = FakeClient()
    srv = DashboardServer(load_settings(environ={}, dotenv=None), client, ("127.0.0.1", 0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/", client
    finally:
        srv.shutdown()
        srv.server_close()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers, resp.read()


def _post(url: str, body: dict):
    request = urllib.request.Request(url + "api/query", data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_panel_query_is_the_panels_own_sql_expanded(server):
    url, client = server
    status, reply = _post(url, {"uid": "twitch-live", "panelId": 5, "from": 1_700_000_000_000, "to": 1_700_003_600_000,
                                "vars": {"game": ["Chess"], "language": ["$__all"]}, "width": 900, "sql": "DROP TABLE x"})
    assert status == 200 and reply["intervalMs"] == 5000
    (sql,) = client.queries
    assert "DROP" not in sql and "game_name IN ('Chess')" in sql and "toDateTime(1700000000)" in sql and "$" not in sql
    assert reply["results"][0]["rows"] == [["Chess"], ["Go"]] and reply["results"][0]["columns"][0]["kind"] == "string"


def test_unknown_dashboard_or_panel_and_bad_input(server):
    url, _ = server
    assert _post(url, {"uid": "nope", "panelId": 1, "from": 0, "to": 1})[0] == 404
    assert _post(url, {"uid": "twitch-live", "panelId": 999, "from": 0, "to": 1})[0] == 404
    assert _post(url, {"uid": "twitch-live", "panelId": "x", "from": 0, "to": 1})[0] == 400


def test_pages_and_static_files_carry_the_csp(server):
    url, _ = server
    for path, kind in [("", "text/html"), ("d/twitch-live", "text/html"), ("static/app.js", "text/javascript"), ("static/plotly.min.js", "text/javascript"),
                       ("api/dashboards", "application/json"), ("healthz", "application/json")]:
        status, headers, body = _get(url + path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and headers["Content-Security-Policy"] == CSP and body, path
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP.split("script-src")[1].split(";")[0]
    with pytest.raises(urllib.error.HTTPError):
        _get(url + "static/layout.html")
    with pytest.raises(urllib.error.HTTPError):
        _get(url + "static/..%2F..%2Fsettings.py")


def test_variables_are_the_options_of_their_queries(server):
    url, client = server
    _, _, body = _get(url + "api/variables/twitch-live?from=1700000000000&to=1700003600000")
    assert json.loads(body) == {"game": ["Chess", "Go"], "language": ["Chess", "Go"]}
    assert all("toDateTime(1700000000)" in q for q in client.queries)


def test_a_panel_whose_table_does_not_exist_yet_says_so(server):
    url, _ = server
    status, reply = _post(url, {"uid": "twitch-chat", "panelId": 5, "from": 0, "to": 3_600_000})
    assert status == 200 and reply["results"][0]["missingTable"] is True and "UNKNOWN_TABLE" in reply["results"][0]["error"]
