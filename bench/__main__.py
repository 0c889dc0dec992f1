"""`make bench` / `python -m bench [NAME...]`: run benchmarks, print a Markdown summary.

Each benchmark module has `run() -> dict` and `report(dict) -> str`. Results are also written
to bench/out/<name>.json; copy the summary into bench/RESULTS.md with the command and date.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from bench.harness import machine_facts

BENCHMARKS = ["apiserver", "security", "client", "scheduler", "controller", "proxy", "kubelet", "cluster"]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    print(f"# minik8s benchmarks — {time.strftime('%Y-%m-%d %H:%M')}\n\nmachine: {machine_facts()}\n")
    for name in names:
        mod = importlib.import_module(f"bench.{name}_bench")
        started = time.monotonic()
        result = mod.run()
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"## {name} ({time.monotonic() - started:.0f}s)\n\n{mod.report(result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
