"""Run every benchmark module in this package that has ``run() -> list[str]``.

``python -m bench`` runs them all; ``python -m bench ingest correlator`` runs
the named ones. Each prints its figures as it finishes.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    available = sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")
    )
    chosen = names or available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    failed = 0
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            for line in module.run():
                print(f"  {line}", flush=True)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            failed += 1
            print(f"  FAILED: {exc!r}", flush=True)
        print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
