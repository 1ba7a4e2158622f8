"""python -m tests.golden [NAME ...] [--mode model|chain]: rewrite the golden runs."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.golden import run, write


def main() -> None:
    from simulator.scenarios import list_scenarios

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="built-in scenarios (default: all nine)")
    parser.add_argument("--mode", choices=("model", "chain"), action="append")
    args = parser.parse_args()
    names = args.names or [info.name for info in list_scenarios()]
    for mode in args.mode or ("model", "chain"):
        for name in names:
            with tempfile.TemporaryDirectory() as scratch:
                summary = run(name, mode, Path(scratch))
                write(name, mode, Path(scratch))
                print(f"{name} ({mode}): {summary['status']}, {summary['liquidations']} liquidations, "
                      f"{summary['adl_fills']} ADL fills, {summary['wall_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
