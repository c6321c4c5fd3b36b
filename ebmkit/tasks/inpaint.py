"""Inpainting (CDRL sec. 5.4.7, CoopFlow sec. 4.4.3): the mask from the command line, the completions with
the observed pixels pasted back, and how far a method's own output strayed from them before that."""

from dataclasses import dataclass
from pathlib import Path

import torch

from ebmkit.data.masks import box_mask, irregular_mask, keep_observed, read_mask
from ebmkit.errors import EbmkitError


def make_mask(shape: tuple[int, ...], num_images: int, mask_file: Path | None, box: str | None, irregular: bool,
              seed: int) -> torch.Tensor:
    """The observed-pixel mask (1 or N, 1, H, W) from exactly one of a mask PNG, a box 'x,y,w,h' and
    irregular strokes (one mask per image, by `seed`)."""
    if (mask_file is not None) + (box is not None) + irregular != 1:
        raise EbmkitError("give exactly one of --mask PNG, --box x,y,w,h and --irregular")
    size = shape[-2:]
    if mask_file is not None:
        return read_mask(mask_file, size)
    if box is not None:
        return box_mask(box, size)
    return irregular_mask(num_images, size, torch.Generator().manual_seed(seed))


@dataclass
class Completions:
    filled: torch.Tensor     # (N, num, C, H, W) completions, the observed pixels pasted back
    rows: torch.Tensor       # (N * (num + 2), C, H, W): per image the original, the masked input, the completions
    observed_mse: float      # mean squared error on the observed pixels before pasting (0 for CDRL)
    observed_fraction: float


def inpaint(method, x: torch.Tensor, mask: torch.Tensor, num: int, generator: torch.Generator, batch_size: int,
            progress=None, steps: int | None = None, infer_steps: int | None = None,
            lr: float | None = None) -> Completions:
    """`num` completions of each image x (N, C, H, W, model space) by the method's own inpainting."""
    filled = method.inpaint(x, mask.to(x.device), num, generator, batch_size=batch_size, progress=progress,
                            steps=steps, infer_steps=infer_steps, lr=lr).cpu()         # (N, num, C, H, W)
    x, mask = x.cpu(), mask.cpu()
    m = mask.expand(len(x), *mask.shape[1:])[:, None].expand_as(filled)
    observed_mse = float(((filled - x[:, None]) ** 2 * m).sum() / m.sum().clamp(min=1))
    filled = keep_observed(x[:, None].expand_as(filled), m, filled)
    masked = torch.where(mask.bool(), x, torch.zeros_like(x))                            # holes in mid-grey
    rows = torch.cat([x[:, None], masked[:, None], filled], 1).flatten(0, 1)             # Fig. 5.7's layout
    return Completions(filled, rows, observed_mse, float(mask.mean()))
