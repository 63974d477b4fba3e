"""Run all benchmarks, or those named on the command line: ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

import benchmarks


def main(argv: list[str]) -> int:
    names = argv or sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))
    out_dir = Path(".run") / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"==> benchmark {name}", flush=True)
        result = importlib.import_module(f"benchmarks.{name}").main()
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps(result, indent=2, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
