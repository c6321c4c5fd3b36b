"""Point data from files: reading and its errors, the standardisation kept in the model file, and
`train --data points.npy` -> `sample --out s.npz/.csv` in the file's own units."""

import json

import numpy as np
import pytest
import torch

from conftest import in_process, set_args, tiny
from ebmkit.data import load_dataset
from ebmkit.data.points import MIN_ROWS, PointUnits, read_points, write_points
from ebmkit.errors import EbmkitError
from ebmkit.methods import load_model
from ebmkit.presets import load_preset, with_data

TINY = tiny("cdrl-points")  # the tiny checkerboard CDRL these tests train


def blob(n=600, dim=2, seed=0):
    """Points far from the origin with very different spreads per coordinate (float64)."""
    g = np.random.default_rng(seed)
    return g.normal(size=(n, dim)) * np.array([40.0, 0.05, 3.0][:dim]) + np.array([1000.0, -7.0, 0.5][:dim])


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-named", "csv", "csv-header"])
def test_read_points_formats(tmp_path, fmt):
    x = blob()
    path = tmp_path / f"p.{fmt.split('-')[0]}"
    if fmt == "npy":
        np.save(path, x)
    elif fmt == "npz":
        np.savez(path, anything=x)
    elif fmt == "npz-named":
        np.savez(path, points=x, labels=np.zeros(len(x)))
    else:
        lines = (["a,b"] if fmt == "csv-header" else []) + [f"{float(u)!r},{float(v)!r}" for u, v in x]
        path.write_text("\n".join(lines) + "\n")
    got = read_points(path)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert torch.equal(got, torch.from_numpy(x.astype(np.float32)))


def test_write_points_round_trip(tmp_path):
    x = torch.from_numpy(blob().astype(np.float32))
    for name in ("s.npz", "s.csv"):
        write_points(x, tmp_path / name)
        assert torch.equal(read_points(tmp_path / name), x)
    assert (tmp_path / "s.csv").read_text().startswith("x0,x1\n")


def test_bad_point_files(tmp_path):
    def fails(content, pattern, name="p.npy"):
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif name.endswith(".npz"):
            np.savez(path, **content)
        else:
            np.save(path, content, allow_pickle=True)
        with pytest.raises(EbmkitError, match=pattern) as err:
            read_points(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)

    x = blob()
    fails(b"not an array at all", "not a readable .npy")
    fails(np.array([{"a": 1}] * 300, dtype=object), "not a readable .npy")        # never unpickled
    fails(np.array(["a"] * 600).reshape(300, 2), "real numbers")
    fails(x[:, 0], r"got shape \(600,\); reshape 1-D data to \(N, 1\)")
    fails(x.reshape(300, 2, 2), r"expected an \(N, D\) array")
    bad = x.copy()
    bad[[17, 40]] = np.nan
    bad[41, 1] = np.inf
    fails(bad, "3 of 600 rows hold NaN or inf \\(first: row 17\\)")
    fails(x[: MIN_ROWS - 1], f"{MIN_ROWS - 1} points are too few")
    fails({"a": x, "b": x}, "name the points 'points'", "p.npz")
    fails("x,y\n" + "1,2\n" * 300 + "3,oops\n", "column 2 of data row 301 is not a number", "p.csv")
    fails("1,2\n" * 300 + "3\n", "data row 301 has 1 columns", "p.csv")
    fails("x,y\n", "no rows of numbers", "p.csv")
    fails("1,2\n", "point files are .npy, .npz, .csv, not .txt", "p.txt")
    with pytest.raises(EbmkitError, match="not found"):
        read_points(tmp_path / "missing.npy")


def test_units_standardize_and_invert_in_float64():
    x = torch.from_numpy(blob(5000))
    units = PointUnits.fit(x, target_std=2.0)
    z = units.to_model(x)
    assert torch.allclose(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z.std(0), torch.full((2,), 2.0, dtype=torch.float64))
    assert torch.allclose(units.to_data(z), x, rtol=0, atol=1e-9)
    assert PointUnits.from_dict(json.loads(json.dumps(units.to_dict()))) == units  # exact through JSON
    with pytest.raises(EbmkitError, match="column 2 is constant"):
        PointUnits.fit(torch.stack([x[:, 0], torch.full((5000,), 3.0, dtype=torch.float64)], 1))


def test_presets_refuse_data_they_cannot_use(tmp_path):
    with pytest.raises(EbmkitError, match="built-in set 'checkerboard' reads no file"):
        load_preset("cdrl-points", ["data.path='pts.npy'"])
    with pytest.raises(EbmkitError, match="reads a point file: set data.path"):
        load_preset("cdrl-points", ["data.name='points'"])
    with pytest.raises(EbmkitError, match="standardize is for point data"):
        load_preset("cdrl-digits", ["data.standardize=true"])
    with pytest.raises(EbmkitError, match="takes a point file"):
        with_data(load_preset("cdrl-points"), str(tmp_path))
    with pytest.raises(EbmkitError, match="built-in 'digits' set, which reads no files"):
        with_data(load_preset("cdrl-digits"), str(tmp_path))
    assert with_data(load_preset("cdrl-cifar10"), str(tmp_path)).data.path == str(tmp_path)
    points = with_data(load_preset("cdrl-points"), "my.csv").data
    assert (points.name, points.path) == ("points", "my.csv")
    with pytest.raises(EbmkitError, match="one split"):
        load_dataset("points", "my.csv", split="test")


def test_train_on_a_file_then_sample_in_its_units(tmp_path):
    """`train --data pts.npy` standardises the file's points (the units go into the model file); `sample`
    writes samples back in the file's units, the same numbers as the library's samples mapped back."""
    x = blob(1000)
    np.save(tmp_path / "pts.npy", x)
    run = tmp_path / "run"
    in_process("train", "--preset", "cdrl-points", "--data", tmp_path / "pts.npy", "--run-dir", run, "--quiet",
               *set_args(TINY + ["train.iterations=20", "data.standardize=true"]), check=True)
    method, _ = load_model(run / "model.safetensors")
    assert method.preset.data.name == "points" and method.preset.data.path == str(tmp_path / "pts.npy")
    scale = method.preset.data.scale
    expected = PointUnits.fit(torch.from_numpy(x).float(), scale)
    assert np.allclose(method.units.mean, expected.mean) and np.allclose(method.units.std, expected.std)
    in_process("sample", "--model", run / "model.safetensors", "--num", 300, "--seed", 3, "--out", tmp_path / "s.npz",
               check=True)
    in_process("sample", "--model", run / "model.safetensors", "--num", 300, "--seed", 3, "--out", tmp_path / "s.csv",
               check=True)
    in_process("sample", "--model", run / "model.safetensors", "--num", 300, "--seed", 3, "--out", tmp_path / "s.png",
               check=True)
    s = np.load(tmp_path / "s.npz")["samples"]
    model_space = method.sample(300, torch.Generator().manual_seed(3))
    assert np.allclose(s, method.units.to_data(model_space).numpy(), rtol=1e-6, atol=1e-4)
    assert np.allclose(read_points(tmp_path / "s.csv").numpy(), s)
    # in the file's units: near the data's centre, far from the origin (model space is standard)
    assert abs(np.median(s[:, 0]) - 1000) < 200 and np.median(np.abs(s[:, 0])) > 500
    held_out = tmp_path / "held_out.csv"
    write_points(torch.from_numpy(blob(600, seed=1)).float(), held_out)
    report = json.loads(in_process("eval", "mmd", "--model", run / "model.safetensors", "--ref", held_out, "--json",
                                   check=True).stdout)
    assert report["num"] == 300 and report["reference"] == str(held_out) and report["ratio"] > 0


def test_a_dimension_the_preset_cannot_take(tmp_path):
    np.save(tmp_path / "p1.npy", blob(600, dim=1))
    np.save(tmp_path / "p2.npy", blob(600))
    for preset, data, pattern in (("coopflow-points", "p1.npy", "a coupling flow needs points of D >= 2"),
                                  ("cdrl-digits", "p2.npy", "built-in 'digits' set, which reads no files"),
                                  ("cdrl-cifar10", "p2.npy", "is not a directory: it should hold cifar-10-batches-bin")):
        proc = in_process("train", "--preset", preset, "--data", tmp_path / data, "--run-dir", tmp_path / "r", "--quiet")
        assert proc.returncode == 2 and pattern in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("preset, extra", [("cdrl-points", ()), ("coopflow-points", ()),
                                           ("coopflow-points", ('flow.arch="mixlogcdf"',)),
                                           ("coopflow-points-langevin", ())])
def test_any_dimension_trains(tmp_path, preset, extra):
    """A 3-D point file trains every point method (and both point flows); pictures need D = 2, arrays do not."""
    np.save(tmp_path / "p3.npy", blob(600, dim=3))
    run = tmp_path / "run"
    in_process("train", "--preset", preset, "--data", tmp_path / "p3.npy", "--run-dir", run, "--quiet",
               *set_args(tiny(preset, "train.iterations=6", "data.standardize=true", *extra)), check=True)
    in_process("sample", "--model", run / "model.safetensors", "--num", 20, "--out", tmp_path / "s.npz", check=True)
    assert np.load(tmp_path / "s.npz")["samples"].shape == (20, 3)
    proc = in_process("sample", "--model", run / "model.safetensors", "--num", 20, "--out", tmp_path / "s.png")
    assert proc.returncode == 2 and "needs 2-D points, this model draws 3-D ones" in proc.stderr
