"""The embedded ClickHouse: chDB (the ClickHouse engine as a library) served over ClickHouse's HTTP interface.

Only one process may open a chDB data directory, so this process owns it and everyone else — the
project's code through clickhouse-connect, Grafana's ClickHouse data source — talks HTTP to it, exactly
as they would to a ClickHouse server. Run it with ``python -m twitch_pipeline.clickhouse_server``
(``twitch-pipeline up`` does).
"""
