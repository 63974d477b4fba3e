"""Run directories for the benchmarks' own platforms.

A benchmark's platform keeps Kafka's logs, the Iceberg warehouse and Flink's checkpoints in its run directory: a
full end-to-end run leaves 2-3 GB, and repeated `make bench` runs once filled this machine's disk. When a
benchmark finishes, only the run directory's ``logs/`` stay (the results are in .run/bench and the reports); when
it fails, everything stays for the post-mortem.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def run_dir(name: str) -> Iterator[Path]:
    """A fresh temporary directory for benchmark ``name``; all but its logs are removed if the block succeeds.

    Stop the platform inside the block: its processes must not write into what is being removed.
    """
    path = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    yield path
    for child in path.iterdir():
        if child.name == "logs":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    print(f"benchmark {name}: data removed, logs kept in {path / 'logs'}", flush=True)
