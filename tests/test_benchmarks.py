"""Every maintained benchmark script runs end to end in its --quick mode, writing its results under --out
(never into benchmarks/results)."""

import json
import os
import subprocess
import sys

from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


def quick(script: str, tmp_path, *args) -> dict:
    """Run `python benchmarks/SCRIPT --quick --out TMP ARGS` with one thread; its results folder's JSON files."""
    out = tmp_path / script.removesuffix(".py")
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {f.name: json.loads(f.read_text()) for f in (out / "results").glob("*.json")}


def test_every_script_has_a_quick_mode_and_a_test():
    """Each script takes --quick and --out through cli.arguments, and has a test below."""
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - {"cli.py"}
    assert all("= arguments(" in (BENCHMARKS / s).read_text() for s in scripts)
    tested = {"cdrl_ablation.py", "coopflow_digits.py", "domain_fid.py", "langevin_bench.py", "nerf_lebm_scenes.py", "nerf_novel_views.py",
              "toy_matrix.py"}
    assert scripts == tested


def test_cdrl_ablation(tmp_path):
    """Three rows of Table 5.9 on the checkerboard (DRL: no initializer, DRL's schedule, timestep input, 30 steps)."""
    cells = quick("cdrl_ablation.py", tmp_path, "--jobs", 2)["cdrl_ablation.json"]["5.9"]
    assert set(cells) == {f"checkerboard|{r}|0" for r in ("DRL", "initializer predicts eps", "CDRL (full)")}
    assert all(c["exit_code"] == 0 and c["score"] > 0 for c in cells.values())
    assert 'init={arch="none"}' in cells["checkerboard|DRL|0"]["overrides"] and cells["checkerboard|CDRL (full)|0"]["overrides"] == []


def test_coopflow_digits(tmp_path):
    rows = quick("coopflow_digits.py", tmp_path)["coopflow_digits.json"]["rows"]
    assert set(rows) == {"CoopFlow", "normalizing flow alone", "Langevin flow alone"}
    assert all(r["num_test"] == 4 and r["recon_mse"] <= r["recon_mse_start"] for r in rows.values())


def test_domain_fid(tmp_path):
    sets = quick("domain_fid.py", tmp_path)["domain_fid.json"]["sets"]
    assert sets["real digits (test split)"]["domain_fid"] < sets["uniform noise"]["domain_fid"]


def test_langevin_bench(tmp_path):
    report = quick("langevin_bench.py", tmp_path)["langevin_cpu.json"]
    assert len(report["overhead"]) == 2 and report["table_5_8"]["batch"] == 1
    assert set(report["table_5_8"]["seconds_per_100"]["torch"]) == {"6x3", "DRL 6x3"}


def test_nerf_lebm_scenes_then_novel_views(tmp_path):
    rows = quick("nerf_lebm_scenes.py", tmp_path)["nerf_lebm_scenes.json"]["rows"]
    assert {r["objects"] for r in rows.values()} == {1}
    model = tmp_path / "nerf_lebm_scenes" / "nerf-lebm-scenes" / "model.safetensors"
    report = quick("nerf_novel_views.py", tmp_path, model)["nerf_novel_views_1shot.json"]
    assert report["objects"] == 1 and report["shots"] == 1


def test_toy_matrix(tmp_path):
    methods = ("cdrl", "coopflow", "langevin_n01")  # the two recipes and a preset variant (the others run like them)
    cells = quick("toy_matrix.py", tmp_path, "--jobs", 2, "--methods", ",".join(methods))["toy_matrix.json"]["cells"]
    assert set(cells) == {f"checkerboard/{m}/0" for m in methods}
    assert all(c["exit_code"] == 0 and c["repeats"] == 2 for c in cells.values())
