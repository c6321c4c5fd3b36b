"""What the benchmark scripts share: running `ebmkit` commands as a user would, where results go, and the
`--quick` mode every script has (tiny settings that check it runs end to end; tests/test_benchmarks.py
runs each one; their results land under --out, never in benchmarks/results)."""

import argparse
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


IN_PROCESS = False  # set by --quick: commands run in this process, saving seconds of start-up each


def ebmkit(*args) -> str:
    """Run `ebmkit ARGS` in a subprocess (in this process with --quick); its stdout, or exit with its error line."""
    args = [str(a) for a in args]
    code, out, err = _in_process(args) if IN_PROCESS else _subprocess(args)
    if code != 0:
        sys.exit(f"ebmkit {' '.join(args)} failed: {err.strip()}")
    return out


def run_ebmkit(args: list, threads: int) -> subprocess.CompletedProcess:
    """`ebmkit ARGS` in a subprocess with `threads` CPU threads, for scripts that train several runs at once."""
    return subprocess.run([sys.executable, "-m", "ebmkit", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def _subprocess(args: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "ebmkit", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def _in_process(args: list[str]) -> tuple[int, str, str]:
    from ebmkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def arguments(parser: argparse.ArgumentParser, out: str) -> argparse.Namespace:
    """Adds --out (runs; default `out`) and --quick to a script's parser; `results` is where its results go:
    benchmarks/results, or with --quick OUT/results."""
    parser.add_argument("--out", default=out, help=f"Folder for the runs (default {out}).")
    parser.add_argument("--quick", action="store_true", help="Tiny settings, to check that the script runs (results under --out).")
    args = parser.parse_args()
    global IN_PROCESS
    IN_PROCESS = args.quick
    args.results = Path(args.out) / "results" if args.quick else RESULTS
    args.results.mkdir(parents=True, exist_ok=True)
    return args
