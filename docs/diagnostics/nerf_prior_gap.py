"""How much a better latent prior could buy on the domain-FID of Table 3.4, for persistent-MCMC
NeRF-LEBM models (one latent chain per training object).

    python docs/diagnostics/nerf_prior_gap.py runs/nerf-scenes-compare/nerf-lebm-scenes/model.safetensors [...]

For each model, domain-FID of random renders (random poses, as `ebmkit eval fid`) with latents from:
the model's own prior (what `ebmkit eval fid` scores), the training objects' posterior latents (a
prior that matched the aggregate posterior exactly), a Gaussian with the posterior latents' mean and
per-dimension spread, and one with their full covariance (shape and appearance apart). The gap between
the first and the second is what the EBM prior has left to learn.

A domain-FID of 800 renders moves by several points from one seed (latents and poses) to the next, so
`--seeds 0,1,2,3` repeats every measurement per seed and prints each seed's value, the mean and the
standard deviation. Seeds are shared across models: seed k draws the same poses (and the same chain
starts) for every model, so the models can be compared seed by seed.
"""

import argparse

import torch
import torch.nn.functional as F

from ebmkit.data import from_config
from ebmkit.data.scenes import to_uint8
from ebmkit.methods import load_model
from ebmkit.metrics.fid import feature_space, stats_of
from ebmkit.metrics.frechet import frechet_distance


def renders(method, z: torch.Tensor, poses: torch.Tensor, batch: int = 100) -> torch.Tensor:
    """uint8 images of latents z (N, 2, dim) from poses (N, 1, 2)."""
    x = torch.cat([method.render_images(z[i:i + batch], poses[i:i + batch])[0][:, 0] for i in range(0, len(z), batch)])
    return to_uint8(x)


def full_covariance_draws(post: torch.Tensor, num: int, gen: torch.Generator) -> torch.Tensor:
    """num draws (num, 2, dim) from Gaussians with the mean and full covariance of each latent in post."""
    out = []
    for zk in post.unbind(1):
        chol = torch.linalg.cholesky(torch.cov(zk.T.double()) + 1e-6 * torch.eye(zk.shape[1], dtype=torch.double))
        out.append(zk.mean(0) + (torch.randn((num, zk.shape[1]), generator=gen, dtype=torch.double) @ chol.T).to(zk.dtype))
    return torch.stack(out, 1)


def direction_spread(z: torch.Tensor) -> tuple[float, float]:
    """Mean norm of latents z (N, dim), and the participation ratio of their directions' covariance
    (dim for isotropic directions, up to sampling noise; 1 if they all lie on one line)."""
    ev = torch.linalg.eigvalsh(torch.cov(F.normalize(z.double(), dim=-1).T))
    return float(z.norm(dim=-1).mean()), float(ev.sum() ** 2 / (ev ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--num", type=int, default=800)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2,3")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for path in args.models:
        method, step = load_model(path)
        if "latents" not in method.nets:
            raise SystemExit(f"{path}: not a persistent-MCMC model (no per-object latents)")
        data = from_config(method.preset.data)
        space = feature_space("auto", data.name, data.shape[-1], method.device)
        ref = stats_of(space, data.x, f"{data.name}:train")
        post = method.nets["latents"].z.detach()                                    # (objects, 2, dim)
        fids = {}
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            poses = method.random_poses(args.num, gen)
            latents = {
                "prior": method.prior_samples(args.num, generator=gen),
                "posterior latents": post[torch.randint(0, len(post), (args.num,), generator=gen)],
                "Gaussian fitted to them": post.mean(0) + post.std(0) * torch.randn((args.num, *post.shape[1:]), generator=gen),
                "full-covariance Gaussian": full_covariance_draws(post, args.num, gen),
            }
            for k, z in latents.items():
                fids.setdefault(k, []).append(frechet_distance(stats_of(space, renders(method, z, poses), k), ref))
        print(f"{path} (step {step}): domain-FID, {args.num} renders vs {data.name}:train, seeds {args.seeds}")
        for k, name in enumerate(("shape", "appearance")):
            norm, ratio = direction_spread(post[:, k])
            print(f"  {name} posterior latents: mean norm {norm:.2f}, directions' participation ratio "
                  f"{ratio:.1f} of {post.shape[-1]}")
        for k, v in fids.items():
            t = torch.tensor(v)
            spread = f" +- {t.std():.1f}" if len(v) > 1 else ""
            print(f"  {k:24s} " + " ".join(f"{x:6.2f}" for x in v) + f"   mean {t.mean():.2f}{spread}", flush=True)


if __name__ == "__main__":
    main()
