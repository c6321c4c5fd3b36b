"""`ebmkit data export`: built-in sets written as files that read back exactly, in the layouts the commands
take (labels.csv, points.csv, poses.json for novel-view)."""

import csv
import json

import pytest
import torch

from conftest import in_process
from ebmkit.data import load_dataset
from ebmkit.data.files import read_images
from ebmkit.data.points import read_points


def export(spec, out, *extra):
    return json.loads(in_process("data", "export", spec, "--out", out, *extra, "--json", check=True).stdout)


def test_image_sets_read_back_exactly_with_their_labels(tmp_path):
    r = export("shapes:test", tmp_path / "shapes")
    data = load_dataset("shapes", split="test")
    assert r["images"] == len(data) and torch.equal(read_images(tmp_path / "shapes"), data.x)
    rows = list(csv.DictReader(open(tmp_path / "shapes" / "labels.csv")))
    assert rows[0].keys() == {"file", "class", "shape", "color", "size"} and len(rows) == len(data)
    assert [r["class"] for r in rows[:5]] == [data.class_names[i] for i in data.labels[:5]]
    assert [r["color"] for r in rows[:5]] == [data.attribute_values[1][int(v)] for v in data.attributes[:5, 1]]


def test_point_sets_read_back(tmp_path):
    export("spiral:test", tmp_path / "s")
    assert torch.allclose(read_points(tmp_path / "s" / "points.csv"), load_dataset("spiral", split="test").x)


def test_posed_scenes_feed_novel_view(nerf_model, tmp_path):
    r = export("scenes:test", tmp_path / "scenes")
    data = load_dataset("scenes", split="test")
    assert (r["objects"], r["images"]) == (len(data.objects.unique()), len(data))
    first = tmp_path / "scenes" / "object_0000"
    poses = json.loads((first / "poses.json").read_text())["views"]
    assert torch.allclose(torch.tensor(list(poses.values())), data.poses[data.objects == 0].rad2deg(), atol=1e-3)
    views = ",".join(str(first / name) for name in list(poses)[:2])
    done = in_process("novel-view", "--model", nerf_model, "--views", views, "--poses", first / "poses.json",
                      "--turntable", 3, "--infer-steps", 1, "--out", tmp_path / "nv", "--json", check=True)
    assert len(json.loads(done.stdout)["poses_deg"]) == 3 and len(list((tmp_path / "nv").glob("*.png"))) >= 3


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown built-in set 'nope'"),
    (["digits:valid"], "valid"),
])
def test_bad_exports_are_refused(args, message, tmp_path):
    proc = in_process("data", "export", *args, "--out", tmp_path / "x")
    assert proc.returncode == 2 and message in proc.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    proc = in_process("data", "export", "digits", "--out", tmp_path / "full")
    assert proc.returncode == 2 and "is not empty" in proc.stderr
