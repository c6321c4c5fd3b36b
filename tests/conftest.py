import atexit
import contextlib
import io
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

# Without a GPU, Triton kernels run in Triton's interpreter on CPU tensors. triton.jit picks interpreted
# or compiled mode when each function is defined, so this must be set before torch imports triton.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Domain classifiers are trained once per test session into a fresh cache (subprocesses inherit it).
os.environ["EBMKIT_CACHE"] = tempfile.mkdtemp(prefix="ebmkit-cache-")
atexit.register(shutil.rmtree, os.environ["EBMKIT_CACHE"], True)
# The smallest networks and runs of every kind of preset, in one place (tiny): tests run the real code paths
# in seconds. Runs train a few iterations; a test adds what it needs after them (later --set values win).
TINY = {
    "cdrl-points": ["ebm.hidden=16", "ebm.num_blocks=1", "init.hidden=16", "init.num_blocks=1", "sampler.steps=2",
                    "train.batch_size=32", "data.num_points=2000", "train.log_every=5", "train.sample_every=1000",
                    "train.warmup=10", "train.init_warmup_lead=1"],
    "cdrl-images": ["ebm.channels=[8, 16]", "ebm.num_res_blocks=1", "ebm.temb_dim=32", "init.base_channels=8",
                    "init.channel_mult=[1, 2]", "init.num_res_blocks=1", "init.temb_dim=32", "sampler.steps=2",
                    "train.batch_size=16", "train.iterations=3", "train.sample_every=3", "train.log_every=1"],
    "coopflow-points": ["flow.hidden=16", "flow.num_couplings=2", "ebm.hidden=16", "ebm.num_layers=2",
                        "langevin.steps=3", "train.batch_size=32", "data.num_points=640", "train.log_every=1",
                        "train.sample_every=1000", "train.ckpt_every=1000", "train.pretrain_iterations=0",
                        "train.warmup_iterations=0"],
    "coopflow-images": ["flow.num_channels=8", "flow.num_blocks=1", "flow.num_components=2", "flow.num_heads=1",
                        "flow.num_dequant_blocks=1", "flow.scales=[[0, 2], [2, 1]]", "ebm.channels=[8, 16]",
                        "ebm.head_channels=4", "langevin.steps=2", "train.pretrain_iterations=0",
                        "train.warmup_iterations=0", "train.iterations=3", "train.batch_size=16", "train.log_every=1",
                        "train.sample_every=1000"],
    "nerf": ["generator.width=16", "generator.depth=2", "generator.skip=1", "generator.freqs_xyz=2",
             "generator.freqs_dir=1", "generator.map_hidden=16", "generator.map_out=8", "render.num_samples=6",
             "render.rays_per_image=16", "latents.dim=4", "latents.prior_steps=2", "latents.prior_samples=4",
             "data.num_objects=6", "data.views=3", "train.batch_size=4", "train.iterations=2", "train.log_every=1",
             "train.sample_every=1000", "inference.test_steps=2", "train.num_preview=4"],
    "nerf-ebm-priors": ["latents.shape.hidden=8", "latents.appearance.hidden=8"],
}


def tiny(preset: str, *extra: str) -> list[str]:
    """The --set overrides that make `preset` tiny (by its kind: the names of the shipped presets say it),
    then `extra`. Sections a mode lacks are left out (CoopFlow's flow alone has no EBM)."""
    if preset.startswith("nerf"):
        return TINY["nerf"] + (TINY["nerf-ebm-priors"] if preset.startswith("nerf-lebm-scenes") else []) + list(extra)
    method, points = preset.split("-")[0], "-points" in preset
    overrides = TINY[f"{method}-{'points' if points else 'images'}"]
    absent = ("ebm.", "langevin.") if preset.endswith("-flow") else ("flow.",) if preset.endswith("-langevin") else ()
    return [o for o in overrides if not o.startswith(absent)] + list(extra)


AUTHORS = ROOT / "tests" / "fixtures" / "authors"
_UNPACKED = Path(tempfile.mkdtemp(prefix="ebmkit-authors-"))
atexit.register(shutil.rmtree, _UNPACKED, True)


def authors_checkpoint(name: str) -> Path:
    """tests/fixtures/authors/NAME, decompressed from NAME.xz (the authors' checkpoints are stored so; README there)."""
    path = _UNPACKED / name
    if not path.exists():
        path.write_bytes(lzma.decompress((AUTHORS / f"{name}.xz").read_bytes()))
    return path


def set_args(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def ebmkit(*args, check=False, timeout=300, env=None):
    """Run the CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "ebmkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ebmkit {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def points_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("pts") / "run"
    from ebmkit.presets import load_preset
    from ebmkit.training import train

    train(load_preset("cdrl-points", tiny("cdrl-points", "train.iterations=4")), run, quiet=True)
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("dig") / "run"
    in_process("train", "--preset", "cdrl-digits", "--run-dir", run, "--quiet", *set_args(tiny("cdrl-digits")), check=True)
    assert (run / "samples" / "step_0000003.png").is_file()
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def coopflow_digits(tmp_path_factory):
    """A tiny CoopFlow digits model after 3 iterations, through the CLI."""
    run = tmp_path_factory.mktemp("coopflow-digits") / "run"
    in_process("train", "--preset", "coopflow-digits", "--run-dir", run, "--quiet", *set_args(tiny("coopflow-digits")),
               check=True)
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def nerf_model(tmp_path_factory):
    """A tiny NeRF-LEBM model (persistent MCMC, EBM priors) after 2 iterations, through the CLI."""
    run = tmp_path_factory.mktemp("nerf") / "run"
    in_process("train", "--preset", "nerf-lebm-scenes", "--run-dir", run, "--quiet", *set_args(tiny("nerf-lebm-scenes")),
               check=True)
    return run / "model.safetensors"


@pytest.fixture
def run():
    return ebmkit


def one_line_error(proc, code, pattern):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


def in_process(*args, check=False):
    """Run `ebmkit ARGS` in this process, seconds faster than `ebmkit` (no start-up, no imports); returns the
    same (returncode, stderr, stdout). For what needs a real process (signals, stdin, the environment, a
    working directory), use `ebmkit`."""
    from ebmkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
    if check and code != 0:
        raise AssertionError(f"ebmkit {args} failed ({code}): {err.getvalue()}")
    return SimpleNamespace(returncode=code, stderr=err.getvalue(), stdout=out.getvalue())


@pytest.fixture
def cli():
    return in_process


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


@pytest.fixture(scope="session")
def shapes_models(tmp_path_factory):
    """Tiny class-conditional and attribute-conditional shapes models (3 iterations each)."""
    out = {}
    for preset in ("cdrl-shapes-cond", "cdrl-shapes-compose"):
        run = tmp_path_factory.mktemp(preset) / "run"
        in_process("train", "--preset", preset, "--run-dir", run, "--quiet", *set_args(tiny(preset)), check=True)
        out[preset] = run / "model.safetensors"
    return out


def write_celeba(root: Path) -> None:
    """Three aligned CelebA images in the usual layout (img_align_celeba/, attributes, partition: 2 train, 1 test)."""
    (root / "img_align_celeba").mkdir()
    names = ["000001.jpg", "000002.jpg", "000003.png"]
    for i, n in enumerate(names):
        im = Image.new("RGB", (178, 218), (0, 0, 0))
        im.paste((40 * (i + 1), 100, 200), (19, 39, 159, 179))  # the centered 140x140 crop
        im.save(root / "img_align_celeba" / n, quality=95)
    rows = ["000001.jpg -1  1", "000002.jpg  1  1", "000003.png -1 -1"]
    (root / "list_attr_celeba.txt").write_text("3\nSmiling Young \n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.png 2\n")


def modified_checkpoint(tmp_path: Path, source: Path, change) -> Path:
    """A copy of the torch checkpoint `source` with `change(state)` applied (tests of ebmkit convert)."""
    state = torch.load(source, weights_only=True)
    change(state)
    path = tmp_path / "modified.pth.tar"
    torch.save(state, path)
    return path
