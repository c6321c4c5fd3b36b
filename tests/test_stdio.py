"""`-` as a file: arrays and scores on standard output and standard input, equal to what the files hold."""

import io
import json
import subprocess
import sys

import numpy as np

from conftest import ROOT, in_process


def pipe(*args, stdin: bytes = b""):
    proc = subprocess.run([sys.executable, "-m", "ebmkit", *map(str, args)], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_points_to_stdout_and_back_in_as_a_reference(points_model, tmp_path):
    in_process("sample", "--model", points_model, "--num", 400, "--seed", 3, "--out", tmp_path / "s.csv", check=True)
    streamed = pipe("sample", "--model", points_model, "--num", 400, "--seed", 3, "--out", "-", "--json")
    assert streamed.stdout.decode() == (tmp_path / "s.csv").read_text()          # the same CSV, byte for byte
    assert json.loads(streamed.stderr.decode().splitlines()[-1])["written"] == ["-"]  # the report moved to stderr
    mmd = ["eval", "mmd", "--model", points_model, "--num", 300, "--repeats", 2, "--json"]
    from_file = json.loads(in_process(*mmd, "--ref", tmp_path / "s.csv", check=True).stdout)
    from_stdin = json.loads(pipe(*mmd, "--ref", "-", stdin=streamed.stdout).stdout)
    assert from_stdin["ratio"] == from_file["ratio"]


def test_images_to_stdout_as_npz(digits_model, tmp_path):
    in_process("sample", "--model", digits_model, "--num", 3, "--steps", 1, "--out", tmp_path / "s.npz", check=True)
    streamed = pipe("sample", "--model", digits_model, "--num", 3, "--steps", 1, "--out", "-").stdout
    assert np.array_equal(np.load(io.BytesIO(streamed))["samples"], np.load(tmp_path / "s.npz")["samples"])


def test_scores_piped_into_auroc(digits_model, tmp_path):
    scores = pipe("ood-score", "--model", digits_model, "--data", "digits:test", "--draws", 1, "--csv").stdout
    (tmp_path / "in.csv").write_bytes(scores)
    ood = pipe("ood-score", "--model", digits_model, "--data", "shapes:test", "--draws", 1, "--csv").stdout
    (tmp_path / "ood.csv").write_bytes(ood)
    files = json.loads(in_process("eval", "auroc", "--in-scores", tmp_path / "in.csv", "--ood-scores", tmp_path / "ood.csv",
                                  "--json", check=True).stdout)
    piped = json.loads(pipe("eval", "auroc", "--in-scores", "-", "--ood-scores", tmp_path / "ood.csv", "--json",
                            stdin=scores).stdout)
    assert piped == files
    both = subprocess.run([sys.executable, "-m", "ebmkit", "eval", "auroc", "--in-scores", "-", "--ood-scores", "-"],
                          input=b"", capture_output=True, cwd=ROOT)
    assert both.returncode == 2 and b"not both" in both.stderr
