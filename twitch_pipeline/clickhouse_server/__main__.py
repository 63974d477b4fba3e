"""``python -m twitch_pipeline.clickhouse_server --data-dir DIR --host H --port P``.

The user and password clients must present come from the settings (environment / ``.env``), never
from the command line, where any local user could read them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from twitch_pipeline.clickhouse_server.engine import Engine
from twitch_pipeline.clickhouse_server.server import ClickHouseHTTPServer, Credentials
from twitch_pipeline.settings import SettingsError, load_settings

#: Seconds a SIGTERM waits for in-flight requests before the engine is closed anyway.
DRAIN_TIMEOUT_S = 20.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twitch_pipeline.clickhouse_server", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="chDB data directory (owned by this process)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("twitch_pipeline.clickhouse_server")
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        engine = Engine(str(args.data_dir))
    except Exception as exc:  # noqa: BLE001 - e.g. another process holds the directory's lock
        print(f"error: cannot open chDB data directory {args.data_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        server = ClickHouseHTTPServer((args.host, args.port), engine, Credentials(settings.clickhouse_user, settings.clickhouse_password))
    except OSError as exc:
        engine.close()
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, _frame) -> None:
        log.info("signal %s: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() blocks until serve_forever returns

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("ClickHouse %s (chDB) serving %s on http://%s:%s", engine.version, args.data_dir, args.host, args.port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if not server.drain(DRAIN_TIMEOUT_S):
            log.warning("requests still running after %.0fs; closing the engine anyway", DRAIN_TIMEOUT_S)
        engine.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
