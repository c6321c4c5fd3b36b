"""`ebmkit data export`: a built-in data set written as ordinary files, in the layouts the commands read.

- images: NNNNNN.png, and labels.csv (file, class, one column per attribute) where the set has labels;
- posed 3-D scenes: object_NNNN/view_VV.png per object, with poses.json in `novel-view --poses` format
  ({"views": {FILE: [elevation, azimuth]}} in degrees) and, for incomplete images, view_VV_mask.png
  (white where pixels are missing, the mask convention of `inpaint --mask` and `novel-view --masks`);
- points: points.csv (header x0, x1, ...), which `train --data` reads.
"""

import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ebmkit.data import Dataset
from ebmkit.data.points import write_points


def _png(image: torch.Tensor, path: Path) -> None:
    """uint8 (C, H, W) -> PNG."""
    Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()).save(path)


def export(data: Dataset, out: Path) -> dict:
    """Write `data` under `out` (an empty or new folder); returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    if data.kind == "points":
        write_points(data.x, out / "points.csv")
        return {"points": len(data), "files": 1}
    if data.poses is not None and data.objects is not None:
        return _export_scenes(data, out)
    names = [f"{i:06d}.png" for i in range(len(data))]
    for image, name in zip(data.x, names):
        _png(image, out / name)
    written = {"images": len(names), "files": len(names)}
    if data.labels is not None or data.attributes is not None:
        columns = ["file"] + (["class"] if data.labels is not None else []) + list(data.attribute_names or [])
        with open(out / "labels.csv", "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(columns)
            for i, name in enumerate(names):
                cls = [data.class_names[data.labels[i]] if data.class_names else int(data.labels[i])] if data.labels is not None else []
                attrs = [values[int(v)] for values, v in zip(data.attribute_values, data.attributes[i])] if data.attributes is not None else []
                rows.writerow([name, *cls, *attrs])
        written["labels"] = "labels.csv"
    return written


def _export_scenes(data: Dataset, out: Path) -> dict:
    degrees = data.poses.rad2deg().tolist()
    objects = data.objects.tolist()
    views: dict[int, dict[str, list[float]]] = {}
    for i, obj in enumerate(objects):
        folder = out / f"object_{obj:04d}"
        folder.mkdir(exist_ok=True)
        name = f"view_{len(views.setdefault(obj, {})):02d}.png"
        _png(data.x[i], folder / name)
        views[obj][name] = [round(v, 4) for v in degrees[i]]
        if data.masks is not None:  # M = 1 observed -> white where missing
            missing = (255 * (1 - data.masks[i, 0].numpy())).astype(np.uint8)
            Image.fromarray(missing).save(folder / name.replace(".png", "_mask.png"))
    for obj, poses in views.items():
        (out / f"object_{obj:04d}" / "poses.json").write_text(json.dumps({"views": poses}, indent=1) + "\n")
    return {"images": len(objects), "objects": len(views), "files": len(objects) + len(views)}
