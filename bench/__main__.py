"""`python -m bench [section ...]`: print every figure as Markdown tables for the README."""

from __future__ import annotations

import importlib
import sys
import time

from bench.common import machine, setup_django

# Each section is a module with run() -> str; later issues add theirs here.
SECTIONS = ["runtime", "research", "planning", "api", "load"]


def main(argv: list[str]) -> None:
    setup_django()
    chosen = argv or SECTIONS
    print(f"## Performance\n\nMachine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.\n", flush=True)
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        print(module.run(), flush=True)
        print(f"_(section {name}: {time.monotonic() - started:.0f} s)_\n", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
