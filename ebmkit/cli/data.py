"""`ebmkit data export`: a built-in data set as files."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ebmkit import inputs
from ebmkit.cli.common import JsonOpt, data_app, example, finish
from ebmkit.errors import EbmkitError


@data_app.command("export", epilog=example("ebmkit data export scenes:test --out scenes_test/",
                                           "ebmkit data export shapes:train --out shapes/ --image-size 32",
                                           "ebmkit data export checkerboard --out checkerboard/"))
def data_export(
    spec: Annotated[str, typer.Argument(help="Built-in set NAME[:SPLIT] (split default: train).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (new or empty).")],
    image_size: Annotated[Optional[int], typer.Option(min=1, help="Image sets: render or resize to this size.")] = None,
    as_json: JsonOpt = False,
):
    """Write a built-in data set as files: PNGs with labels.csv (classes, attributes), posed scenes as one
    folder per object with the poses.json that `novel-view --poses` reads, 2-D sets as points.csv."""
    name, _, split = spec.partition(":")
    if name not in inputs.BUILTIN:
        raise EbmkitError(f"unknown built-in set {name!r}; choose one of {', '.join(inputs.BUILTIN)}")
    inputs.output_dir(out_dir, "--out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise EbmkitError(f"--out {out_dir} is not empty; give a new or empty folder")
    from ebmkit.data import load_dataset
    from ebmkit.data.export import export

    written = export(load_dataset(name, split=split or "train", image_size=image_size), out_dir)
    finish({"data": spec, "out": str(out_dir), **written}, as_json, f"{spec}: {written} -> {out_dir}")
