"""Novel-view synthesis of an unseen object (sec. 3.5.6): its latents inferred from posed views, possibly
incomplete (sec. 3.5.7), then rendered at new poses. Views come from files with a poses JSON, or from a
posed built-in set (scored by PSNR on the views not given, metrics/novel_view.py)."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ebmkit.data import Dataset, load_dataset
from ebmkit.data.files import builtin_spec, fit, load_images
from ebmkit.data.masks import read_mask
from ebmkit.errors import EbmkitError
from ebmkit.metrics.novel_view import novel_view_psnr
from ebmkit.metrics.poses import to_model_frame
from ebmkit.metrics.psnr import psnr

POSES_SCHEMA = '{"views": {FILE: [elevation, azimuth]}, "targets": [[el, az], ...] or {FILE: [el, az]}} in degrees'


def posed_set(method, spec: str) -> Dataset:
    """The built-in posed set NAME[:SPLIT] at the model's image size; the model's own procedural scenes
    keep its data options (distinct_ends)."""
    parts = builtin_spec(spec)
    if parts is None:
        raise EbmkitError(f"--data {spec}: give a built-in posed set such as scenes:test")
    own = parts[0] == method.preset.data.name and getattr(method.preset.data, "distinct_ends", False)
    return load_dataset(parts[0], split=parts[1], image_size=method.shape[-1], distinct_ends=own)


@dataclass
class Views:
    rendered: torch.Tensor                         # (V, 3, S, S) in [0, 1]
    report: dict = field(default_factory=dict)    # poses in degrees, PSNR where the truth is known


def from_set(method, spec: str, shots: int, objects: int, steps: int | None, generator: torch.Generator,
             progress=None) -> Views:
    """Each of `objects` objects of a posed set: its first `shots` views given, its other views rendered and
    scored. `rendered` holds, per object, the given views, the rendered novel views and the true ones."""
    result = novel_view_psnr(method, posed_set(method, spec), shots, objects, steps, generator, progress)
    rows = torch.cat([result["images"][:, :shots], result["rendered"][:, shots:], result["images"][:, shots:]], 1)
    report = {k: v for k, v in result.items() if k not in ("rendered", "images")}
    return Views(rows[:8].flatten(0, 1), {**report, "row": rows.shape[1]})


def _read_poses(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        spec = json.loads(path.read_text())
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
        return spec
    except (OSError, ValueError) as e:
        raise EbmkitError(f"--poses {path}: needs {POSES_SCHEMA} ({e})") from None


def _view_poses(spec: dict, files: list[str], path: Path) -> torch.Tensor:
    """(V, 2) radians: the pose of each view file, looked up by its name or its path."""
    try:
        views = spec["views"]
        return torch.tensor([views[Path(f).name if Path(f).name in views else f] for f in files],
                            dtype=torch.float32).deg2rad()
    except (KeyError, TypeError, ValueError) as e:
        raise EbmkitError(f"--poses {path}: needs {{\"views\": {{FILE: [elevation, azimuth]}}}} for every view "
                          f"({type(e).__name__}: {e})") from None


def _image(method, path: str | Path) -> torch.Tensor:
    """(3, S, S) in [0, 1]: the first image of a file, fitted to the model."""
    return fit(load_images(path)[:1], method.shape)[0].float() / 255


def from_files(method, files: list[str], masks: list[str], poses: Path | None, turntable: int,
               steps: int | None, generator: torch.Generator, progress=None) -> Views:
    """Render one object seen in `files`. Its views' poses come from the JSON `poses` ({"views": ...}); a
    model trained without poses infers them, and renders in its own frame: known true poses then map the
    targets into that frame. Targets: the JSON's "targets" (a list of poses, or {FILE: pose}, whose images
    are the truth for PSNR), else `turntable` azimuths at the views' mean elevation (or at the first view's
    inferred pose)."""
    unknown = method.preset.inference.poses == "unknown"
    if not files or (poses is None and not unknown):
        raise EbmkitError("give --views FILE(s) with --poses JSON, or --data scenes:test")
    spec = _read_poses(poses)
    given = _view_poses(spec, files, poses) if "views" in spec or not unknown else None  # (V, 2) radians
    images = torch.stack([_image(method, f) for f in files])
    inferred = method.infer_poses(images) if unknown else None
    observed = None
    if masks:
        if len(masks) != len(files):
            raise EbmkitError(f"--masks: give one mask per view ({len(files)} views, {len(masks)} masks)")
        observed = torch.cat([read_mask(f, method.shape[-2:]) for f in masks])[None]  # (1, V, 1, S, S)
    z = method.infer_objects(images[None], (inferred if given is None else given)[None], observed,
                             steps=steps, generator=generator, progress=progress)
    targets, truth = spec.get("targets"), None
    if isinstance(targets, dict):  # images at known poses: the truth for PSNR
        truth = torch.stack([_image(method, f if Path(f).is_file() else poses.parent / f) for f in targets])
        target_poses = torch.tensor(list(targets.values()), dtype=torch.float32).deg2rad()
    elif targets:
        target_poses = torch.tensor(targets, dtype=torch.float32).deg2rad()
    else:
        start = inferred[0] if given is None else torch.stack([given[:, 0].mean(), torch.tensor(0.0)])
        target_poses = torch.stack([start[0].expand(turntable),
                                    start[1] + 2 * math.pi * torch.arange(turntable) / turntable], 1)
    report = {"poses_deg": target_poses.rad2deg().tolist()}
    if unknown:
        report["inferred_poses_deg"] = inferred.rad2deg().tolist()  # the given views, in the model's frame
        if given is not None:
            target_poses = to_model_frame(inferred, given, target_poses)
            report["model_frame_poses_deg"] = target_poses.rad2deg().tolist()
    rendered = method.render_images(z, target_poses[None].to(method.device))[0][0].cpu()
    if truth is not None:
        report["psnr"] = float(psnr(rendered, truth, peak=1.0).mean())
    return Views(rendered, {**report, "row": len(rendered)})
