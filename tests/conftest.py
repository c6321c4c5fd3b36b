import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A tiny, fast CDRL configuration on the checkerboard for loop, CLI and resume tests.
TINY = ["ebm.hidden=16", "ebm.num_blocks=1", "init.hidden=16", "init.num_blocks=1", "sampler.steps=2",
        "train.batch_size=32", "data.num_points=2000", "train.log_every=5", "train.sample_every=1000",
        "train.warmup=10", "train.init_warmup_lead=1"]


def set_args(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def ebmkit(*args, check=False, timeout=300, env=None):
    """Run the CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "ebmkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ebmkit {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def run():
    return ebmkit
