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
    failed = []
    for name in names:
        print(f"==> benchmark {name}", flush=True)
        try:
            result = importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not cost the others' numbers
            failed.append(name)
            result = {"failed": f"{type(exc).__name__}: {exc}"}
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps(result, indent=2, default=str), flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
