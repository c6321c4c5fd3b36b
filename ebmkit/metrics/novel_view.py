"""Few-shot novel-view synthesis of held-out objects (thesis sec. 3.5.6, Table 3.5): infer each object's
latents from `shots` of its views, render its other views, and compare them with the real ones by PSNR."""

import torch

from ebmkit.data import Dataset
from ebmkit.errors import EbmkitError
from ebmkit.metrics.poses import to_model_frame
from ebmkit.metrics.psnr import psnr


def views_by_object(data: Dataset, num_objects: int, shots: int) -> list[torch.Tensor]:
    """Image indices of the first `num_objects` objects, each with more than `shots` views."""
    if data.poses is None or data.objects is None:
        raise EbmkitError(f"{data.name} has no camera poses: novel views need posed images")
    groups = [torch.nonzero(data.objects == o).flatten() for o in range(int(data.objects.max()) + 1)]
    groups = [g for g in groups if len(g) > shots][:num_objects]
    if not groups:
        raise EbmkitError(f"{data.name} has no object with more than {shots} views")
    return groups


def novel_view_psnr(method, data: Dataset, shots: int = 2, num_objects: int = 20, steps: int | None = None,
                    generator: torch.Generator | None = None, progress=None, complete: torch.Tensor | None = None) -> dict:
    """Mean PSNR (peak 1, images in [0, 1]) of the rendered unseen views and of the given views
    (reconstruction), over objects that keep all their views; the inputs are each object's first views.
    For incomplete images (data.masks), `complete` (uint8, like data.x) holds the images to score against.
    A model trained without poses renders in its own frame: the data's poses are mapped into it by the
    alignment of the given views' inferred poses with their true ones, over all objects (`to_model_frame`)."""
    groups = views_by_object(data, num_objects, shots)
    count = min(len(g) for g in groups)
    idx = torch.stack([g[:count] for g in groups])                           # (B, count)
    images = (data.x if complete is None else complete)[idx].float() / 255   # (B, count, 3, S, S): the truth
    poses = data.poses[idx].float()
    masks = data.masks[idx[:, :shots]].float() if data.masks is not None else None
    given = data.x[idx[:, :shots]].float() / 255                            # what inference sees (masked, if so)
    if method.preset.inference.poses == "unknown":
        inferred = method.infer_poses(given.flatten(0, 1))
        poses = to_model_frame(inferred, poses[:, :shots].flatten(0, 1), poses.flatten(0, 1)).view_as(poses)
    z = method.infer_objects(given, poses[:, :shots], masks, steps=steps, generator=generator, progress=progress)
    rendered, _ = method.render_images(z, poses.to(method.device))           # (B, count, 3, S, S)
    rendered = rendered.cpu()
    novel = psnr(rendered[:, shots:].flatten(0, 1), images[:, shots:].flatten(0, 1), peak=1.0)
    seen = psnr(rendered[:, :shots].flatten(0, 1), images[:, :shots].flatten(0, 1), peak=1.0)
    return {"psnr": float(novel.mean()), "psnr_given_views": float(seen.mean()), "objects": len(groups),
            "shots": shots, "novel_views": count - shots, "rendered": rendered, "images": images}
