"""Pictures: image grids, 2-D scatters, and the per-level data/density/sample figure of Fig. 5.5."""

import math
from pathlib import Path

import torch
from PIL import Image

from ebmkit.data import from_model_space


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (image grids do without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Images in model space (N, C, H, W) in [-1, 1] -> one PNG grid; tiles under 32 pixels are
    enlarged (nearest neighbour) so that small images such as 8x8 digits stay visible."""
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(x)))))
    tiles = from_model_space(x.detach().cpu())
    zoom = max(1, 32 // tiles.shape[-1])
    tiles = tiles.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)
    grid = tile(tiles, nrow)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).squeeze(-1).numpy()).save(path)


def tile(images: torch.Tensor, nrow: int, pad: int = 1, pad_value: int = 255) -> torch.Tensor:
    """(N, C, H, W) -> (C, rows (H + pad) + pad, cols (W + pad) + pad): `nrow` images per row, left to right,
    each framed by `pad` pixels of `pad_value`."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = images.new_full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value)
    for i, img in enumerate(images):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[:, top:top + h, left:left + w] = img
    return grid


def save_images(x: torch.Tensor, folder: str | Path) -> None:
    """One PNG per image, 000000.png, 000001.png, ..."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(from_model_space(x.detach().cpu())):
        Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy()).save(folder / f"{i:06d}.png")


def _limit(points: torch.Tensor) -> float:
    return 1.1 * float(points.abs().max())


def save_scatter(points: torch.Tensor, path: str | Path, lim: float | None = None) -> None:
    """2-D samples (N, 2) as a scatter plot."""
    lim = lim or _limit(points)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(*points.detach().cpu().T.numpy(), s=0.5, alpha=0.5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def levels_figure_2d(method, data: torch.Tensor | None, samples: list[torch.Tensor], path: str | Path,
                     generator: torch.Generator | None = None, grid: int = 150) -> None:
    """Fig. 5.5: rows = data (unless `data` is None), learned density, samples; columns = noise levels T-1 ... 0.

    `samples` is method.sample_levels(...): x_{T-1} ... x_0, then the denoised x_0 (last column).
    """
    T = method.num_levels
    names = ("density", "samples") if data is None else ("data", "density", "samples")
    data_levels = None if data is None else method.noised_levels(data, generator)
    lim = _limit(samples[-1] if data is None else data)
    axis = torch.linspace(-lim, lim, grid, device=samples[-1].device)
    gy, gx = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    points = torch.stack([gx.flatten(), gy.flatten()], 1)
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), T, figsize=(2.4 * T, 2.4 * len(names)), squeeze=False)
    rows = dict(zip(names, axes))
    for col in range(T):
        level = T - 1 - col
        density = torch.softmax(method.log_density(points, level).flatten(), 0).reshape(grid, grid)
        shown = samples[-1] if level == 0 else samples[col]
        for name, pts in (("data", None if data is None else data_levels[col]), ("samples", shown)):
            if name in rows:
                rows[name][col].scatter(*pts.cpu().T.numpy(), s=0.3, alpha=0.4)
                rows[name][col].set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        rows["density"][col].imshow(density.cpu().numpy(), extent=(-lim, lim, -lim, lim), cmap="viridis")
        axes[0, col].set_title(f"level {level}", fontsize=9)
        for ax in axes[:, col]:
            ax.set(xticks=[], yticks=[])
    for name, row in rows.items():
        row[0].set_ylabel(name)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_curves(x: list[float], curves: dict[str, list[float]], path: str | Path, xlabel: str) -> None:
    """One small panel per curve, sharing the x axis (e.g. FID and accuracy against guidance weight)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.8), squeeze=False)
    for ax, (name, y) in zip(axes[0], curves.items()):
        ax.plot(x, y, "o-")
        ax.set_xlabel(xlabel)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def training_curves(records: list[dict], path: str | Path) -> None:
    """A run's metrics.jsonl as curves against the step: losses, energies, gradient norms, and the
    --eval-every figures, one panel per family; guard roll-backs as dashed red lines in every panel."""
    logged = [r for r in records if "event" not in r and "step" in r]
    evals = [r for r in records if r.get("event") == "eval"]
    guards = [r["step"] for r in records if r.get("event") in ("guard", "guard_failed")]
    panels = {title: {k: [(r["step"], r[k]) for r in logged if isinstance(r.get(k), (int, float))]
                      for k in sorted({k for r in logged for k in r if k.startswith(prefix)})}
              for title, prefix in (("losses", "loss_"), ("energies", "energy_"), ("gradient norms", "grad_norm_"))}
    panels["evaluation"] = {k: [(r["step"], r[k]) for r in evals if isinstance(r.get(k), (int, float))]
                            for k in sorted({k for r in evals for k in r if k not in ("event", "step")})}
    panels = {t: {k: v for k, v in c.items() if v} for t, c in panels.items()}
    panels = {t: c for t, c in panels.items() if c}
    if not panels:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, points in curves.items():
            ax.plot(*zip(*points), label=name, marker="o" if title == "evaluation" else None, lw=1)
        for step in guards:
            ax.axvline(step, color="red", ls="--", lw=0.8)
        ax.set(title=title, xlabel="step", yscale="log" if title == "gradient norms" else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
