// The local renderer of the Grafana dashboards: time range, template variables, auto-refresh, panels.
// Every text from the server is data: it reaches the DOM through textContent, and plotly through esc()
// (plotly reads a little HTML in labels; entities make it show the characters instead).
"use strict";

const RANGES = [["now-5m", "Last 5 minutes"], ["now-15m", "Last 15 minutes"], ["now-30m", "Last 30 minutes"], ["now-1h", "Last 1 hour"],
  ["now-3h", "Last 3 hours"], ["now-6h", "Last 6 hours"], ["now-12h", "Last 12 hours"], ["now-24h", "Last 24 hours"], ["now-2d", "Last 2 days"], ["now-7d", "Last 7 days"]];
const REFRESH = ["off", "5s", "10s", "30s", "1m", "5m", "15m"];
const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };
const ALL = "$__all";
const COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function esc(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function durationMs(text) {
  const m = /^(\d+)(ms|s|m|h|d|w|y)$/.exec(text);
  if (!m) throw new Error("bad duration " + text);
  return Number(m[1]) * UNIT_MS[m[2]];
}

// "now", "now-1h", epoch milliseconds or "YYYY-MM-DD HH:MM[:SS]" (UTC) -> epoch milliseconds.
function parseTime(text, now) {
  text = String(text).trim();
  if (text === "now") return now;
  const rel = /^now-(\d+(?:ms|s|m|h|d|w|y))$/.exec(text);
  if (rel) return now - durationMs(rel[1]);
  if (/^\d{10,}$/.test(text)) return Number(text);
  const abs = Date.parse(text.replace(" ", "T") + (/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? "" : "Z"));
  if (Number.isNaN(abs)) throw new Error("cannot read time " + text);
  return abs;
}

function utc(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

async function getJSON(url, options) {
  const resp = await fetch(url, options);
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

async function navigation(currentUid) {
  const nav = document.getElementById("nav");
  const boards = await getJSON("/api/dashboards");
  nav.textContent = "";
  for (const b of boards) {
    nav.append(el("a", { href: "/d/" + encodeURIComponent(b.uid), class: b.uid === currentUid ? "current" : "", text: b.title }));
  }
  nav.append(el("a", { href: "/catalog", class: currentUid === "catalog" ? "current" : "", text: "Data catalog" }));
  return boards;
}

class Dashboard {
  constructor(root, uid) {
    this.root = root;
    this.uid = uid;
    this.params = new URLSearchParams(location.search);
    this.options = {};
    this.timer = null;
    this.generation = 0;
  }

  async load() {
    this.board = await getJSON("/api/dashboards/" + encodeURIComponent(this.uid));
    document.title = this.board.title + " · twitch-pipeline";
    const time = this.board.time || { from: "now-1h", to: "now" };
    this.from = this.params.get("from") || time.from;
    this.to = this.params.get("to") || time.to;
    this.refresh = this.params.get("refresh") || this.board.refresh || "off";
    this.selected = {};
    for (const v of this.variables()) {
      const fromUrl = this.params.getAll("var-" + v.name);
      const current = (v.current && v.current.value) || [ALL];
      this.selected[v.name] = fromUrl.length ? fromUrl : (Array.isArray(current) ? current : [current]);
    }
    this.buildControls();
    this.buildGrid();
    await this.reload();
    this.schedule();
  }

  variables() {
    return ((this.board.templating || {}).list || []).filter((v) => v.hide !== 2);
  }

  range() {
    const now = Date.now();
    return { from: parseTime(this.from, now), to: parseTime(this.to, now) };
  }

  saveUrl() {
    const p = new URLSearchParams();
    p.set("from", this.from);
    p.set("to", this.to);
    p.set("refresh", this.refresh);
    for (const [name, values] of Object.entries(this.selected)) for (const value of values) p.append("var-" + name, value);
    history.replaceState(null, "", location.pathname + "?" + p.toString());
  }

  buildControls() {
    const controls = document.getElementById("controls");
    controls.textContent = "";
    this.varSelects = {};
    for (const v of this.variables()) {
      const select = el("select", { id: "var-" + v.name, "data-variable": v.name });
      select.addEventListener("change", () => {
        this.selected[v.name] = [select.value];
        this.saveUrl();
        this.reload();
      });
      this.varSelects[v.name] = select;
      controls.append(el("label", { for: select.id, text: v.label || v.name }), select);
    }
    const preset = el("select", { id: "time-range" }, el("option", { value: "", text: "Custom" }));
    for (const [value, label] of RANGES) preset.append(el("option", { value, text: label }));
    preset.value = this.to === "now" && RANGES.some(([r]) => r === this.from) ? this.from : "";
    // Epoch milliseconds (Grafana's URL form of an absolute range) are shown as UTC date and time.
    const shown = (t) => (/^\d{10,}$/.test(t) ? utc(Number(t)) : t);
    const fromInput = el("input", { id: "time-from", size: "19", value: shown(this.from), title: "now-1h, or YYYY-MM-DD HH:MM:SS (UTC)" });
    const toInput = el("input", { id: "time-to", size: "19", value: shown(this.to), title: "now, or YYYY-MM-DD HH:MM:SS (UTC)" });
    const apply = el("button", { id: "time-apply", type: "button", text: "Apply" });
    preset.addEventListener("change", () => {
      if (!preset.value) return;
      this.from = preset.value;
      this.to = "now";
      fromInput.value = this.from;
      toInput.value = this.to;
      this.saveUrl();
      this.reload();
    });
    apply.addEventListener("click", () => {
      try {
        parseTime(fromInput.value, Date.now());
        parseTime(toInput.value, Date.now());
      } catch (err) {
        alert(err.message);
        return;
      }
      this.from = fromInput.value.trim();
      this.to = toInput.value.trim();
      preset.value = this.to === "now" && RANGES.some(([r]) => r === this.from) ? this.from : "";
      this.saveUrl();
      this.reload();
    });
    const refresh = el("select", { id: "refresh", title: "Auto-refresh" });
    for (const r of REFRESH) refresh.append(el("option", { value: r, text: r === "off" ? "Refresh off" : "Every " + r }));
    if (!REFRESH.includes(this.refresh)) refresh.append(el("option", { value: this.refresh, text: "Every " + this.refresh }));
    refresh.value = this.refresh;
    refresh.addEventListener("change", () => {
      this.refresh = refresh.value;
      this.saveUrl();
      this.schedule();
    });
    const now = el("button", { id: "refresh-now", type: "button", text: "↻" });
    now.addEventListener("click", () => this.reload());
    controls.append(preset, el("label", { for: "time-from", text: "From" }), fromInput, el("label", { for: "time-to", text: "To" }), toInput, apply, refresh, now,
      el("span", { class: "muted", text: "UTC" }));
  }

  schedule() {
    if (this.timer) clearInterval(this.timer);
    this.timer = this.refresh === "off" ? null : setInterval(() => this.reload(), durationMs(this.refresh));
  }

  buildGrid() {
    this.root.textContent = "";
    this.root.append(el("h1", { text: this.board.title }));
    if (this.board.description) this.root.append(el("p", { class: "muted", text: this.board.description }));
    const grid = el("div", { class: "grid" });
    this.panels = [];
    const flat = [];
    for (const p of this.board.panels || []) {
      if (p.type === "row") flat.push(...(p.panels || [])); else flat.push(p);
    }
    for (const p of flat) {
      const g = p.gridPos || { x: 0, y: 0, w: 12, h: 8 };
      const body = el("div", { class: "panel-body" });
      const box = el("div", { class: "panel", id: "panel-" + p.id, "data-panel-id": String(p.id), "data-type": p.type, "data-state": "loading", title: p.description || "" },
        el("div", { class: "panel-title", text: p.title || "" }), body);
      box.style.gridColumn = `${g.x + 1} / span ${g.w}`;
      box.style.gridRow = `${g.y + 1} / span ${g.h}`;
      grid.append(box);
      this.panels.push({ def: p, box, body });
    }
    this.root.append(grid);
  }

  async loadVariables(range) {
    if (!this.variables().length) return;
    this.options = await getJSON(`/api/variables/${encodeURIComponent(this.uid)}?from=${range.from}&to=${range.to}`);
    for (const v of this.variables()) {
      const select = this.varSelects[v.name];
      const current = this.selected[v.name][0];
      select.textContent = "";
      if (v.includeAll) select.append(el("option", { value: ALL, text: "All" }));
      const values = this.options[v.name] || [];
      for (const value of values) select.append(el("option", { value, text: value }));
      if (current !== ALL && !values.includes(current)) select.append(el("option", { value: current, text: current }));
      select.value = current;
    }
  }

  async reload() {
    const generation = ++this.generation;
    document.body.dataset.rendered = "false";
    const range = this.range();
    try {
      await this.loadVariables(range);
    } catch (err) {
      console.warn("variables:", err);
    }
    await Promise.all(this.panels.map((p) => this.renderPanel(p, range, generation)));
    if (generation === this.generation) {
      document.body.dataset.rendered = "true";
      document.body.dataset.generation = String(generation);
    }
  }

  async renderPanel(p, range, generation) {
    p.box.dataset.state = "loading";
    let reply;
    try {
      reply = await getJSON("/api/query", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ uid: this.uid, panelId: p.def.id, from: range.from, to: range.to, vars: this.selected, options: this.options,
          width: Math.max(100, Math.round(p.body.clientWidth)) }),
      });
    } catch (err) {
      reply = { results: [{ error: String(err.message || err), columns: [], rows: [] }] };
    }
    if (generation !== this.generation) return;
    p.body.textContent = "";
    const failed = reply.results.find((r) => r.error && !r.missingTable);
    const missing = reply.results.find((r) => r.missingTable);
    if (failed) {
      p.box.dataset.state = "error";
      p.body.append(el("div", { class: "panel-error", text: failed.error }));
      return;
    }
    if (missing) {
      p.box.dataset.state = "missing";
      p.body.append(el("div", { class: "panel-note", text: "No data yet: " + missing.error }));
      return;
    }
    const result = reply.results[0] || { columns: [], rows: [] };
    const rows = reply.results.reduce((n, r) => n + r.rows.length, 0);
    p.box.dataset.rows = String(rows);
    if (!rows) {
      p.box.dataset.points = "0";
      p.box.dataset.state = "empty";
      p.body.append(el("div", { class: "panel-note", text: "No data in this time range" }));
      return result;
    }
    try {
      const draw = { timeseries: drawTimeseries, barchart: drawBars, stat: drawStat, table: drawTable }[p.def.type] || drawTable;
      p.box.dataset.points = String(draw(p, reply.results, range));
      p.box.dataset.state = "ok";
    } catch (err) {
      p.box.dataset.state = "error";
      p.body.textContent = "";
      p.body.append(el("div", { class: "panel-error", text: "Rendering failed: " + err.message }));
    }
    return result;
  }
}

function columnsOf(result, kind) {
  return result.columns.map((c, i) => [c, i]).filter(([c]) => c.kind === kind).map(([, i]) => i);
}

function plotLayout(p, extra) {
  return Object.assign({
    margin: { l: 50, r: 10, t: 6, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: "#d8d9da", size: 11 }, colorway: COLORS, showlegend: true,
    legend: { orientation: "h", y: -0.15, font: { size: 10 } },
    xaxis: { gridcolor: "#2c3235", automargin: true }, yaxis: { gridcolor: "#2c3235", automargin: true, rangemode: "tozero" },
  }, extra || {});
}

function plot(p, traces, layout) {
  const chart = el("div", { class: "chart" });
  p.body.append(chart);
  Plotly.newPlot(chart, traces, plotLayout(p, layout), { displayModeBar: false, responsive: true, staticPlot: false });
  return traces.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}

// Time series in Grafana's long format: a time column, optional label columns, value columns.
function drawTimeseries(p, results, range) {
  const traces = [];
  for (const result of results) {
    const [t] = columnsOf(result, "time");
    if (t === undefined) throw new Error("a time series needs a time column");
    const labels = columnsOf(result, "string");
    const values = columnsOf(result, "number");
    const series = new Map();
    for (const row of result.rows) {
      const label = labels.map((i) => row[i]).join(" ");
      for (const v of values) {
        const name = label ? (values.length > 1 ? `${label} ${result.columns[v].name}` : label) : result.columns[v].name;
        if (!series.has(name)) series.set(name, { x: [], y: [] });
        series.get(name).x.push(row[t]);
        series.get(name).y.push(row[v]);
      }
    }
    for (const [name, s] of series) traces.push({ type: "scatter", mode: "lines", name: esc(name), x: s.x, y: s.y, line: { width: 1.5 }, connectgaps: false });
  }
  const unit = ((p.def.fieldConfig || {}).defaults || {}).unit;
  return plot(p, traces, { xaxis: { type: "date", range: [utc(range.from), utc(range.to)], gridcolor: "#2c3235" },
    yaxis: { gridcolor: "#2c3235", rangemode: "tozero", ticksuffix: unit === "percent" ? "%" : unit === "s" ? " s" : "" } });
}

function drawBars(p, results) {
  const result = results[0];
  const strings = columnsOf(result, "string");
  const x = strings.length ? strings[0] : 0;
  const horizontal = (p.def.options || {}).orientation === "horizontal";
  const categories = result.rows.map((r) => esc(r[x] === null ? "(none)" : r[x]));
  const traces = columnsOf(result, "number").map((v) => {
    const values = result.rows.map((r) => r[v]);
    return horizontal ? { type: "bar", orientation: "h", name: esc(result.columns[v].name), y: categories, x: values }
      : { type: "bar", name: esc(result.columns[v].name), x: categories, y: values };
  });
  const layout = horizontal ? { yaxis: { autorange: "reversed", automargin: true, type: "category" }, xaxis: { gridcolor: "#2c3235" }, margin: { l: 10, r: 10, t: 6, b: 30 } }
    : { xaxis: { type: "category", automargin: true } };
  const drawn = plot(p, traces, layout);
  return horizontal ? traces.reduce((n, t) => n + t.y.length, 0) : drawn;
}

function formatNumber(value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  const abs = Math.abs(value);
  const text = abs >= 1e6 ? (value / 1e6).toFixed(2) + " M" : abs >= 1e4 ? (value / 1e3).toFixed(1) + " K" : Number.isInteger(value) ? String(value) : value.toFixed(2);
  return text + (unit === "percent" ? "%" : unit === "s" ? " s" : "");
}

function drawStat(p, results) {
  const result = results[0];
  const unit = ((p.def.fieldConfig || {}).defaults || {}).unit;
  const box = el("div", { class: "stat" });
  const row = result.rows[0];
  if (!row) return 0;
  const numeric = columnsOf(result, "number");
  for (const i of numeric.length ? numeric : [0]) {
    box.append(el("div", {}, el("div", { class: "stat-value", text: formatNumber(row[i], unit) }), el("div", { class: "stat-label", text: result.columns[i].name })));
  }
  p.body.append(box);
  return row.some((v) => v !== null) ? 1 : 0;
}

function drawTable(p, results) {
  const result = results[0];
  const head = el("tr", {}, ...result.columns.map((c) => el("th", { text: c.name, title: c.type })));
  const body = el("tbody", {});
  for (const row of result.rows) {
    body.append(el("tr", {}, ...row.map((v, i) => el("td", { class: result.columns[i].kind === "number" ? "num" : "",
      text: v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v) }))));
  }
  p.body.append(el("table", {}, el("thead", {}, head), body));
  return result.rows.length;
}

function drawLineage() {
  const data = JSON.parse(document.getElementById("lineage-data").textContent);
  const kindColor = { producer: "#7eb26d", topic: "#eab839", job: "#6ed0e0", consumer: "#ef843c", clickhouse: "#1f78c1", iceberg: "#ba43a9", dashboard: "#e24d42" };
  const kinds = data.nodes.map((n) => n.split(":")[0]);
  Plotly.newPlot("lineage", [{
    type: "sankey", arrangement: "snap",
    node: { label: data.nodes.map((n) => esc(n.replace(":", ": "))), color: kinds.map((k) => kindColor[k] || "#888"), pad: 12, thickness: 14 },
    link: { source: data.edges.map((e) => e[0]), target: data.edges.map((e) => e[1]), value: data.edges.map(() => 1), color: "rgba(150,150,150,0.25)" },
  }], { margin: { l: 10, r: 10, t: 10, b: 10 }, paper_bgcolor: "rgba(0,0,0,0)", font: { color: "#d8d9da", size: 11 } }, { displayModeBar: false, responsive: true });
  document.body.dataset.rendered = "true";
}

async function main() {
  const dash = document.getElementById("dashboard");
  if (dash) {
    const uid = decodeURIComponent(location.pathname.split("/")[2] || "");
    await navigation(uid);
    await new Dashboard(dash, uid).load();
    return;
  }
  if (document.getElementById("lineage")) {
    await navigation("catalog");
    drawLineage();
    return;
  }
  const list = document.getElementById("dashboard-list");
  if (list) {
    for (const b of await navigation("")) {
      list.append(el("li", {}, el("a", { href: "/d/" + encodeURIComponent(b.uid), text: b.title }), el("span", { class: "muted", text: " — " + b.description })));
    }
    list.append(el("li", {}, el("a", { href: "/catalog", text: "Data catalog" }), el("span", { class: "muted", text: " — topics and tables, lineage, freshness, row counts, data quality" })));
    document.body.dataset.rendered = "true";
  }
}

main().catch((err) => {
  document.body.dataset.rendered = "error";
  document.querySelector("main").append(el("div", { class: "panel-error", text: String(err.message || err) }));
});
