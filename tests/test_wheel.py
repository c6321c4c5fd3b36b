"""The wheel works outside the checkout: built from this tree, installed into a fresh virtual environment
(its dependencies borrowed from the test environment through a .pth file, so nothing downloads), run from
another folder."""

import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import ROOT, tiny


def run(*args, cwd=None, check=True):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the fresh environment's `ebmkit` command)."""
    root = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "dist", ROOT)
    wheel, = (root / "dist").glob("ebmkit_cli-*.whl")
    env = root / "env"
    run(sys.executable, "-m", "venv", env)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    (root / purelib / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return wheel, env / "bin" / "ebmkit"


def test_the_wheel_holds_the_presets_and_the_license(installed):
    names = zipfile.ZipFile(installed[0]).namelist()
    presets = {n.rsplit("/", 1)[-1] for n in names if n.startswith("ebmkit/presets/files/")}
    assert presets == {p.name for p in (ROOT / "presets").glob("*.toml")}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_installed_command_runs_from_another_folder(installed, tmp_path):
    _, ebmkit = installed
    where = run(ebmkit.parent / "python", "-c", "import ebmkit; print(ebmkit.__file__)", cwd=tmp_path).stdout
    assert str(ROOT) not in where  # the installed copy, not the checkout
    listed = run(ebmkit, "presets", "list", cwd=tmp_path).stdout
    assert "cdrl-points" in listed and "nerf-lebm-carla-mcmc" in listed
    overrides = [a for o in tiny("cdrl-points", "train.iterations=3") for a in ("--set", o)]
    run(ebmkit, "train", "--preset", "cdrl-points", "--run-dir", "run", "--quiet", *overrides, cwd=tmp_path)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    version = run(ebmkit, "--version", cwd=tmp_path).stdout
    assert version.strip() == f"ebmkit {installed[0].name.split('-')[1]}"
