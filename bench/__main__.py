"""``python -m bench run --mode embedded|kafka --out bench/results/NAME.json`` (see bench/README.md)."""

from __future__ import annotations

if __name__ == "__main__":
    from bench.cli import main

    raise SystemExit(main())
