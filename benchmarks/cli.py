"""What the benchmark scripts share: running `ebmkit` commands as a user would, where results go, and the
`--quick` mode every script has (tiny settings that check it runs end to end; tests/test_benchmarks.py
runs each one; their results land under --out, never in benchmarks/results)."""

import argparse
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def ebmkit(*args) -> str:
    """Run `ebmkit ARGS` in a subprocess; its stdout, or exit with its error line."""
    proc = subprocess.run([sys.executable, "-m", "ebmkit", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ebmkit {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    return proc.stdout


def arguments(parser: argparse.ArgumentParser, out: str) -> argparse.Namespace:
    """Adds --out (runs; default `out`) and --quick to a script's parser; `results` is where its results go:
    benchmarks/results, or with --quick OUT/results."""
    parser.add_argument("--out", default=out, help=f"Folder for the runs (default {out}).")
    parser.add_argument("--quick", action="store_true", help="Tiny settings, to check that the script runs (results under --out).")
    args = parser.parse_args()
    args.results = Path(args.out) / "results" if args.quick else RESULTS
    args.results.mkdir(parents=True, exist_ok=True)
    return args
