"""`ebmkit convert`: the authors' released checkpoints as ebmkit model files."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ebmkit import inputs
from ebmkit.cli.common import JsonOpt, SetOpt, app, err, example, finish
from ebmkit.convert import SOURCES


@app.command(epilog=example("ebmkit convert --from cdrl Cifar_10_best.pth.tar --out cdrl.safetensors",
                            "ebmkit convert --from cdrl Cifar_10_best.pth.tar --out live.safetensors --no-ema"))
def convert(
    source: Annotated[Path, typer.Argument(help="The authors' checkpoint (a torch.save file, read with weights_only=True).", show_default=False)],
    kind: Annotated[str, typer.Option("--from", help=f"Which authors' code wrote it: {', '.join(SOURCES)}.", show_default=False)],
    out: Annotated[Path, typer.Option(help="The ebmkit model file to write (.safetensors).", show_default=False)],
    preset: Annotated[Optional[str], typer.Option(help="Preset whose networks receive the weights [default: the source's, e.g. cdrl-cifar10-authors].")] = None,
    overrides: SetOpt = [],
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Sample with the EMA weights (as the authors evaluate) or the live ones.")] = True,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", help="A source key that maps to no ebmkit tensor is an error; --no-strict skips and lists it.")] = True,
    as_json: JsonOpt = False,
):
    """Convert an authors' released checkpoint (AlvinZhuyx/CDRL, CoopFlow or NeRF-LEBM) into an ebmkit model file
    that every command takes. Every tensor is mapped or reported; missing tensors and shape mismatches are errors."""
    inputs.existing_file(source, "SOURCE")
    inputs.output_file(out, "--out", (".safetensors",))
    from ebmkit.convert import convert as run

    written, notes = run(kind, source, out, preset, overrides, ema, strict)
    for note in notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    finish({"written": [str(written)], "notes": notes}, as_json, f"model written to {written}")
