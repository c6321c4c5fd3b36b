"""What the benchmark scripts share: running `ebmkit` commands as a user would, and where results go."""

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
