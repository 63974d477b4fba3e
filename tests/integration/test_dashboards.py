"""The dashboards on ClickHouse filled by the real pipeline, and the local page in headless Chromium.

One platform for the module, started by `up` (so the page server runs as the platform's `dashboards`
component, with its metrics collector), the streaming jobs and the sink; then a bounded synthetic run
placed in the past (so a fixed time range holds all of it). Every panel query of every dashboard is
expanded for that range and run; panels whose tables do not exist (yet) are skipped and reported. The
page is then driven in Debian's Chromium through Playwright: every panel renders without an error, charts
draw points, the time-range picker and a template variable change the data, and user content holding
`<script>` shows as text. Screenshots go to `.run/artifacts/dashboards/`.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from connectors.clickhouse import clickhouse_client
from tests.cli import run_cli
from twitch_pipeline.dashboards.macros import ALL
from twitch_pipeline.dashboards.model import load_dashboards, panels, tables_in
from twitch_pipeline.errors import wait_until
from twitch_pipeline.jobs import submit
from twitch_pipeline.platform.lifecycle import down, start_services, status, stop_services, up
from twitch_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / ".run" / "artifacts" / "dashboards"
XSS = "<script>document.body.dataset.xss='ran'</script>"
BOARDS = load_dashboards()
# Panels that may be empty on a short synthetic run: no event is late, no quality check has run, no job restarted.
MAY_BE_EMPTY = {("pipeline-health", "Late events by reason"), ("pipeline-health", "Data-quality results")}
SHAPES = {"timeseries": ("time", "number"), "barchart": ("string", "number"), "stat": ("number",), "table": ()}


@pytest.fixture(scope="module")
def filled(make_settings) -> Iterator[dict[str, Any]]:
    """The platform with the pipeline's output of a bounded synthetic run that ended ten minutes ago."""
    settings = make_settings(synthetic_channels=150, synthetic_games=20)
    began, wall_from = time.monotonic(), int(time.time() * 1000) - 60_000
    try:
        up(settings, echo=lambda _: None)
        # The jobs behind the Twitch live dashboard; the chat dashboard is checked on whatever chat tables exist.
        for job in ("enrich_streams", "aggregate_streams"):
            submit(settings, job)
        # The sink only: a continuous producer's events at the wall clock would make this run's past events late.
        start_services(settings, echo=lambda _: None, only=["sink"])
        # ~6,000 events of 150 channels are about an hour of stream snapshots (and chat): all of it in the past.
        start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=90)
        summary = settings.run_path / "produce-summary.json"
        produced = run_cli(settings, "produce", "--source", "synthetic", "--events", "6000", "--seed", "5", "--rate", "0",
                           "--start-time", start.isoformat(), "--summary", str(summary))
        assert produced.returncode == 0, produced.stderr
        snapshots = json.loads(summary.read_text())["game_streams"]["unique"]
        with clickhouse_client(settings) as client:
            def scalar(sql: str) -> Any:
                return client.query(sql).result_rows[0][0]

            wait_until(lambda: scalar("SELECT count() FROM game_streams_enriched") >= snapshots, 480, f"{snapshots} enriched snapshots", interval_s=2)
            # The producer's closing heartbeats close every window: wait for the minute of the newest snapshot.
            wait_until(lambda: scalar("SELECT max(window_start) FROM top_streams") >= scalar("SELECT toStartOfMinute(max(data_retrieved_at)) FROM game_streams_enriched")
                       and all(scalar(f"SELECT count() FROM {t}") > 0 for t in ("game_minute_stats", "language_minute_stats", "share_minute_stats",
                                                                                 "stream_duration_stats")),
                       300, "the newest minute in every aggregate", interval_s=2)
            wait_until(lambda: scalar("SELECT count() FROM pipeline_metrics WHERE metric = 'records_per_s'") > 0, 60,
                       "the collector's first rates", interval_s=2)
            newest = scalar("SELECT max(window_start) FROM top_streams")
            # User content as the pipeline stores it: a stream title, and a chat line when the chat tables exist.
            client.insert("top_streams", [[newest, newest + timedelta(minutes=1), 0, "xss", "xss", "xss", "g-xss", "Chess", XSS, "en", 1]],
                          column_names=["window_start", "window_end", "rank_in_window", "stream_id", "user_login", "user_name", "game_id",
                                        "game_name", "title", "language", "viewer_count"])
            tables = {row[0] for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows}
            if "chat_silver" in tables:
                client.insert("chat_silver", [[uuid.uuid4().hex, "xss_channel", "42", newest, XSS, 0.0]],
                              column_names=["message_id", "channel", "chatter_id", "sent_at", "text", "sentiment"])
            first = scalar("SELECT min(window_start) FROM game_minute_stats")
            top_game = scalar(f"SELECT game_name FROM game_minute_stats FINAL WHERE window_start = '{newest:%Y-%m-%d %H:%M:%S}' "
                              "AND game_name IS NOT NULL ORDER BY viewers_sum DESC LIMIT 1")
        to_ms = max(int(time.time() * 1000), int(newest.replace(tzinfo=timezone.utc).timestamp() * 1000)) + 120_000
        from_ms = int(first.replace(tzinfo=timezone.utc).timestamp() * 1000) - 60_000
        print(f"\npipeline filled in {time.monotonic() - began:.0f}s")
        data_to = int(newest.replace(tzinfo=timezone.utc).timestamp() * 1000) + 120_000
        yield {"settings": settings, "from": from_ms, "to": to_ms, "data_to": data_to, "wall_from": wall_from, "tables": tables, "newest": newest, "top_game": top_game,
               "url": status(settings)["components"]["dashboards"]["url"]}
    finally:
        stop_services(settings, echo=lambda _: None)
        down(settings, echo=lambda _: None)  # stops Flink with its jobs: no savepoint is wanted


def _query(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + "api/query", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def _missing(panel: dict[str, Any], tables: set[str]) -> set[str]:
    return {t for target in panel["targets"] for t in tables_in(target["rawSql"])} - tables


def test_every_panel_query_returns_rows_of_its_shape(filled):
    skipped, checked = [], 0
    for uid, board in BOARDS.items():
        for panel in panels(board):
            if missing := _missing(panel, filled["tables"]):
                skipped.append(f"{uid}/{panel['title']} (no {', '.join(sorted(missing))})")
                continue
            reply = _query(filled["url"], {"uid": uid, "panelId": panel["id"], "from": filled["from"], "to": filled["to"],
                                           "vars": {}, "options": {}, "width": 1000})
            for result in reply["results"]:
                where = f"{uid}/{panel['title']}: {result['sql']}"
                assert result["error"] is None, f"{where}\n{result['error']}"
                kinds = [c["kind"] for c in result["columns"]]
                assert result["columns"], where
                for kind in SHAPES[panel["type"]]:
                    assert kind in kinds, f"{where}: needs a {kind} column, got {result['columns']}"
                if panel["type"] == "timeseries":
                    assert kinds[0] == "time", where
                if (uid, panel["title"]) not in MAY_BE_EMPTY and not uid.endswith("chat"):
                    assert result["rows"], f"{where}: no rows"
                    if panel["type"] == "stat":
                        assert any(v is not None for v in result["rows"][0]), f"{where}: null"
            checked += 1
    if skipped:
        warnings.warn(f"panels skipped, their tables do not exist: {'; '.join(skipped)}", stacklevel=1)
    assert checked >= sum(1 for b in BOARDS.values() if not b["uid"].endswith("chat") for _ in panels(b))


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed: `apt-get install -y chromium` (scripts/install-system-deps.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking",
                                                                      "--disable-component-update", "--disable-sync"])
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-rendered='true']", timeout=60_000)
    return page, problems


def _rerendered(page, before: str) -> None:
    page.wait_for_function("g => document.body.dataset.rendered === 'true' && document.body.dataset.generation !== g", arg=before, timeout=60_000)


def test_every_dashboard_renders_in_chromium(filled, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for uid, board in BOARDS.items():
        # Pipeline health over the wall-clock time of this test; the others over the synthetic run's event time.
        start, end = (filled["wall_from"], filled["to"]) if uid == "pipeline-health" else (filled["from"], filled["data_to"])
        page, problems = _open(browser, f"{filled['url']}d/{uid}?from={start}&to={end}&refresh=off")
        states = page.eval_on_selector_all(".panel", "ps => ps.map(p => [Number(p.dataset.panelId), p.dataset.state, p.textContent.slice(0, 300)])")
        by_id = {p["id"]: p for p in panels(board)}
        assert len(states) == len(by_id)
        for panel_id, state, text in states:
            panel = by_id[panel_id]
            if _missing(panel, filled["tables"]):
                assert state == "missing", f"{uid}/{panel['title']}: {state} {text}"
                continue
            assert state in ("ok", "empty"), f"{uid}/{panel['title']}: {state}: {text}"
            if (uid, panel["title"]) not in MAY_BE_EMPTY and not uid.endswith("chat"):
                assert state == "ok", f"{uid}/{panel['title']} drew nothing"
        if not uid.endswith("chat"):
            points = page.eval_on_selector_all(".panel[data-type='timeseries']", "ps => ps.map(p => Number(p.dataset.points || 0))")
            assert points and min(points) > 0, f"{uid}: time series without points {points}"
            assert page.locator(".panel[data-type='timeseries'] .scatterlayer .trace path.js-line").count() > 0
        assert not problems, f"{uid}: browser errors {problems}"
        assert page.evaluate("document.body.dataset.xss") is None
        page.screenshot(path=str(ARTIFACTS / f"{uid}.png"), full_page=True)
        page.close()


def test_time_range_variable_and_escaping(filled, browser):
    page, problems = _open(browser, f"{filled['url']}d/twitch-live?from={filled['from']}&to={filled['data_to']}&refresh=off")
    trend = page.locator("#panel-7")  # "Viewers and live streams": one point per minute and series
    wide = int(trend.get_attribute("data-points"))
    top_games = page.locator("#panel-5")
    assert int(top_games.get_attribute("data-rows")) > 1

    # The title holding <script> is a table cell's text, and it never ran.
    cells = page.locator("#panel-14 td").all_text_contents()
    assert XSS in cells
    assert page.evaluate("document.body.dataset.xss") is None and not problems

    # The time-range picker: the last minutes of the data are fewer points than all of it.
    narrow_from = (filled["newest"] - timedelta(minutes=4)).strftime("%Y-%m-%d %H:%M:%S")
    generation = page.evaluate("document.body.dataset.generation")
    page.fill("#time-from", narrow_from)
    page.click("#time-apply")
    _rerendered(page, generation)
    assert 0 < int(trend.get_attribute("data-points")) < wide, f"{wide} points in the whole range"
    assert f"from={filled['from']}" not in page.url

    # A template variable: one game leaves one bar in "Top games by viewers now".
    options = page.eval_on_selector_all("#var-game option", "os => os.map(o => o.value)")
    assert options[0] == ALL and len(options) > 2
    generation = page.evaluate("document.body.dataset.generation")
    page.select_option("#var-game", filled["top_game"])
    _rerendered(page, generation)
    assert top_games.get_attribute("data-rows") == "1"
    assert "var-game=" in page.url and not problems
    page.screenshot(path=str(ARTIFACTS / "twitch-live-one-game.png"), full_page=True)
    page.close()

    if "chat_silver" in filled["tables"]:
        chat, problems = _open(browser, f"{filled['url']}d/twitch-chat?from={filled['from']}&to={filled['data_to']}&refresh=off")
        assert XSS in chat.locator("#panel-12 td").all_text_contents()
        assert chat.evaluate("document.body.dataset.xss") is None and not problems
        chat.close()


def test_catalog_page(filled, browser):
    page, problems = _open(browser, f"{filled['url']}catalog")
    assert page.locator("#lineage .sankey .sankey-node").count() > 20
    text = page.locator("main").text_content()
    for expected in ("game_streams_enriched", "Kafka topic", "ClickHouse table", "Iceberg table", "rows", "newest", "records retained", "sink_batches"):
        assert expected in text, expected
    assert not problems
    page.screenshot(path=str(ARTIFACTS / "catalog.png"), full_page=True)
    page.close()


def test_index_links_every_dashboard(filled, browser):
    page, _ = _open(browser, filled["url"])
    links = page.eval_on_selector_all("#dashboard-list a", "as => as.map(a => a.getAttribute('href'))")
    assert links == [f"/d/{uid}" for uid in BOARDS] + ["/catalog"]
    page.close()
