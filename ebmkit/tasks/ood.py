"""Out-of-distribution scores (sec. 5.4.5): the energy E = -f at a noise level, higher = more anomalous."""

import torch

from ebmkit.data.files import model_inputs


def score(method, spec: str, level: int, draws: int, generator: torch.Generator, batch_size: int,
          progress=None) -> list[float]:
    """The energy of every image of `spec` (a file, folder, .npz or built-in set), converted to the
    model's channels and size, averaged over `draws` noise draws at `level`."""
    x = model_inputs(spec, method.shape)
    out = []
    for batch in x.split(batch_size):
        out += method.energy(batch, level, draws, generator).tolist()
        if progress is not None:
            progress(len(batch))
    return out
