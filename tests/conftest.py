import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

# Without a GPU, Triton kernels run in Triton's interpreter on CPU tensors. triton.jit picks interpreted
# or compiled mode when each function is defined, so this must be set before torch imports triton.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Domain classifiers are trained once per test session into a fresh cache (subprocesses inherit it).
os.environ["EBMKIT_CACHE"] = tempfile.mkdtemp(prefix="ebmkit-cache-")
atexit.register(shutil.rmtree, os.environ["EBMKIT_CACHE"], True)
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


DIGITS_TINY = ["ebm.channels=[8, 16]", "ebm.num_res_blocks=1", "ebm.temb_dim=32", "init.base_channels=8",
               "init.channel_mult=[1, 2]", "init.num_res_blocks=1", "init.temb_dim=32", "sampler.steps=2",
               "train.batch_size=16", "train.iterations=3", "train.sample_every=3", "train.log_every=1"]


@pytest.fixture(scope="session")
def points_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("pts") / "run"
    from ebmkit.presets import load_preset
    from ebmkit.train import train

    train(load_preset("cdrl-points", TINY + ["train.iterations=4"]), run, quiet=True)
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("dig") / "run"
    ebmkit("train", "--preset", "cdrl-digits", "--run-dir", run, "--quiet", *set_args(DIGITS_TINY), check=True)
    assert (run / "samples" / "step_0000003.png").is_file()
    return run / "model.safetensors"


@pytest.fixture
def run():
    return ebmkit


class StubLayers(torch.nn.Module):
    """Stands in for Inception's layers: (N, 3, 299, 299) in [-1, 1] -> (N, 8, 1, 1), deterministic
    (8 features rather than 2048, so that a dozen test images give a full-rank covariance)."""

    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(8)
        self.proj = torch.nn.Linear(3 * 64, 8)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return torch.tanh(self.proj(self.pool(x).flatten(1)))[:, :, None, None]


class StubInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = StubLayers()

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(scope="session")
def stub_inception(tmp_path_factory):
    """A TorchScript file shaped like clean-fid's Inception, to test the FID path without a download."""
    path = tmp_path_factory.mktemp("inception") / "stub.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, yet it is Inception's format
        torch.jit.script(StubInception()).save(str(path))
    return path


SHAPES_TINY = ["ebm.channels=[8, 16]", "ebm.num_res_blocks=1", "ebm.temb_dim=32", "init.base_channels=8",
               "init.channel_mult=[1, 2]", "init.num_res_blocks=1", "init.temb_dim=32", "init.attn_resolutions=[]",
               "sampler.steps=2", "train.batch_size=16", "train.iterations=2", "train.sample_every=2",
               "train.log_every=1"]


@pytest.fixture(scope="session")
def shapes_models(tmp_path_factory):
    """Tiny class-conditional and attribute-conditional shapes models (2 iterations each)."""
    out = {}
    for preset in ("cdrl-shapes-cond", "cdrl-shapes-compose"):
        run = tmp_path_factory.mktemp(preset) / "run"
        ebmkit("train", "--preset", preset, "--run-dir", run, "--quiet", *set_args(SHAPES_TINY), check=True)
        out[preset] = run / "model.safetensors"
    return out
