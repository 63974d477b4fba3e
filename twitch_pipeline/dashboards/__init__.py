"""Dashboards: the Grafana dashboard JSON files rendered by a local page server, and the data catalog page.

One dashboard definition (``k8s/grafana/dashboards/*.json``), two renderers: Grafana in a cluster, and
:mod:`twitch_pipeline.dashboards.server` on a laptop, which expands the ClickHouse plugin's macros the way
the plugin does (:mod:`~twitch_pipeline.dashboards.macros`) and draws the panels with plotly.js.
"""
