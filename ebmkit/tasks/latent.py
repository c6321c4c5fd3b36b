"""CoopFlow as a latent-variable model (sec. 4.4.3, 4.4.4): reconstruction by inferring the Langevin
flow's start, and interpolation between two images' inferred latents z."""

from dataclasses import dataclass

import torch


@dataclass
class Reconstruction:
    x: torch.Tensor          # (N, C, H, W) reconstructions F(x_hat*)
    rows: torch.Tensor       # (3 * min(N, 16), C, H, W): x_hat*, reconstruction, original (Fig. 4.6)
    curve: list[float]       # per-pixel MSE (model space) after each gradient step, mean over images (Fig. 4.7)


def reconstruct(method, x: torch.Tensor, steps: int | None, lr: float | None, generator: torch.Generator,
                batch_size: int, progress=None) -> Reconstruction:
    """Reconstruct images x (N, C, H, W, model space) with `steps` (default 200) gradient steps at rate `lr`
    (default 0.05)."""
    done = method.batched_infer(x, None, batch_size, steps=200 if steps is None else steps,
                                lr=0.05 if lr is None else lr, generator=generator, progress=progress)
    show = slice(0, 16)
    rows = torch.stack([done.x_hat[show], done.x[show], x[show]], 1).flatten(0, 1).cpu()
    return Reconstruction(done.x.cpu(), rows, done.curve.mean(0).tolist())


def interpolate(method, a: torch.Tensor, b: torch.Tensor, points: int, steps: int | None, lr: float | None,
                generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
    """The row a, g(z_t) for `points` values of t from 0 to 1, b (Fig. 4.9), where z_t is linear between the
    latents inferred for a and b (1, C, H, W) (as the authors do); and the MSE of those two inferences."""
    done = method.infer(torch.cat([a, b]), steps=200 if steps is None else steps, lr=0.05 if lr is None else lr,
                        generator=generator)
    t = torch.linspace(0, 1, points, device=a.device).view(-1, *[1] * (a.dim() - 1))
    z = (1 - t) * done.z[:1] + t * done.z[1:]
    return torch.cat([a, method.decode(z), b]).cpu(), done.curve[:, -1].tolist()
