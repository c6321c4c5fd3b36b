"""Inception-v3 features for FID, read from a local file and never downloaded.

clean-fid would download NVIDIA's TorchScript Inception (the network of the TensorFlow FID code)
at run time. Here the same file comes from `--inception-weights PATH` or $EBMKIT_INCEPTION_WEIGHTS;
images go through clean-fid's "clean" resizer (PIL bicubic to 299x299 on float values, no
quantisation) and clean-fid's batch feature function, exactly as `cleanfid.fid` does for a folder.
"""

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from cleanfid.fid import get_batch_features
from cleanfid.resize import build_resizer

from ebmkit.errors import EbmkitError

ENV = "EBMKIT_INCEPTION_WEIGHTS"
URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def weights_path(path: str | Path | None = None) -> Path:
    """The Inception file from the argument or the environment, or an error naming what to fetch."""
    given = path or os.environ.get(ENV)
    if not given:
        raise EbmkitError(f"FID needs the Inception-v3 weights, which ebmkit never downloads: fetch {URL} "
                          f"and pass --inception-weights PATH or set {ENV}=PATH")
    path = Path(given).expanduser()
    if not path.is_file():
        raise EbmkitError(f"Inception weights {path} not found: download {URL} to that path")
    return path


class InceptionFeatures:
    """uint8 (N, C, H, W) images -> (N, 2048) pool features, as clean-fid's mode "clean" computes them."""

    name = "inception"
    label = "FID (Inception-v3, clean-fid)"

    def __init__(self, path: str | Path | None = None, device: torch.device | str = "cpu"):
        path = weights_path(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated; the file is TorchScript
                base = torch.jit.load(str(path), map_location=device).eval()
            self.layers = base.layers  # clean-fid's InceptionV3W runs these on already resized images
        except (RuntimeError, AttributeError) as e:
            raise EbmkitError(f"{path} is not the TorchScript Inception of {URL}: {str(e).splitlines()[0]}") from None
        self.device = torch.device(device)
        self.resize = build_resizer("clean")

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) floats in [0, 255] -> (N, 2048)."""
        return self.layers((x - 128) / 128).reshape(len(x), -1)

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        hwc = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # grey -> RGB
        hwc = hwc.permute(0, 2, 3, 1).cpu().numpy()                              # (N, H, W, 3) uint8
        resized = np.stack([self.resize(im) for im in hwc])                      # (N, 299, 299, 3) float32
        batch = torch.from_numpy(resized).permute(0, 3, 1, 2)
        return get_batch_features(batch, self._network, self.device)
