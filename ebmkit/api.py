"""The Python API (docs/python-api.md): `ebmkit.load` a model file, `ebmkit.train` a preset,
`ebmkit.load_preset`. Tensors go in and out in model space (images NCHW in [-1, 1]); point models
sample in their data file's own units, as `ebmkit sample` writes them."""

from pathlib import Path

import torch

from ebmkit.methods import load_model
from ebmkit.presets import load_preset, resolve
from ebmkit.runtime import setup_ranks
from ebmkit.tasks import inpaint as inpainting
from ebmkit.tasks import latent


class Model:
    """A model file, loaded once: `sample`, `energy`, and the tasks of its method (`inpaint` for CDRL
    and CoopFlow; `reconstruct` and `interpolate` for CoopFlow). `method` is the underlying Method."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.path = Path(path)
        self.method, self.step = load_model(path, setup_ranks(device).device, command="ebmkit.load")
        self.preset, self.shape = self.method.preset, self.method.shape

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}: {self.preset.method} {self.preset.name}, step {self.step}, shape {self.shape})"

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(self.method.device).manual_seed(seed)

    def sample(self, num: int, seed: int = 0, steps: int | None = None, batch_size: int = 256) -> torch.Tensor:
        """`num` samples (num, *shape) on the CPU; `steps` Langevin steps as `ebmkit sample --steps`."""
        x = self.method.sample(num, self._generator(seed), batch_size, steps=steps)
        return self.method.units.to_data(x) if self.method.units is not None else x

    def energy(self, x: torch.Tensor, level: int = 0) -> torch.Tensor:
        """(N,) energies E = -f (unnormalised -log p; lower = more likely) of x at stage `level` (CDRL: noise
        level, x as noised to it; CoopFlow: 0 the EBM, 1 the flow). Point models take the data's units."""
        x = x.to(self.method.device, torch.float32)
        if self.method.units is not None:
            x = self.method.units.to_model(x)
        return -self.method.log_density(x, level).cpu()

    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, num: int = 1, seed: int = 0, steps: int | None = None,
                batch_size: int = 256) -> torch.Tensor:
        """(N, num, C, H, W) completions of images x (N, C, H, W) where mask (N or 1, 1, H, W) is 0 (1 marks
        the observed pixels, kept exactly)."""
        x = x.to(self.method.device)
        return inpainting.inpaint(self.method, x, mask, num, self._generator(seed), batch_size, steps=steps).filled

    def reconstruct(self, x: torch.Tensor, seed: int = 0, steps: int | None = None, lr: float | None = None,
                    batch_size: int = 256) -> torch.Tensor:
        """CoopFlow: reconstructions (N, C, H, W) of images x by inferring their latents (sec. 4.4.3)."""
        return latent.reconstruct(self.method, x.to(self.method.device), steps, lr, self._generator(seed), batch_size).x

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, points: int = 9, seed: int = 0) -> torch.Tensor:
        """CoopFlow: the row a, `points` decoded images between the latents of a and b (1, C, H, W), b."""
        dev = self.method.device
        return latent.interpolate(self.method, a.to(dev), b.to(dev), points, None, None, self._generator(seed))[0]


def load(path: str | Path, device: str = "auto") -> Model:
    """The model in an ebmkit model file (validated like every command's --model)."""
    return Model(path, device)


def train(preset: str | None, run_dir: str | Path, overrides: list[str] = (), data: str | None = None,
          device: str = "auto", resume: bool = False, quiet: bool = True) -> Model:
    """Train preset (a name or a .toml/.json file) into run_dir, as `ebmkit train`: `overrides` are --set
    items, `data` is --data; with resume=True (and preset None) continue the run in run_dir. Returns the
    trained model."""
    from ebmkit.training import train as run_training

    run_dir = Path(run_dir)
    cfg, run_dir = resolve(None if resume else preset, list(overrides), data, run_dir, run_dir if resume else None)
    path = run_training(cfg, run_dir, resume=resume, device=device, quiet=quiet)
    return Model(path, device)


__all__ = ["Model", "load", "train", "load_preset"]
