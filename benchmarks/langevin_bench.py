"""Langevin sampling speed, measured in one run; prints ratios and writes benchmarks/results/langevin_<device>.json.

    OMP_NUM_THREADS=2 python benchmarks/langevin_bench.py [--device cuda] [--rounds 5] [--quick]

1. Sampler overhead: K Langevin steps through ebmkit.langevin, divided by K forward+backward passes of
   the same energy network on the same batch (the floor of gradient-based MCMC).
2. The engine against a plain hand-written loop (torch.autograd.grad + the update) on the same network.
3. Scaling of the time of K steps with K, batch size and resolution (table, and the plot
   benchmarks/results/langevin_<device>_scaling.png).
4. Table 5.8: seconds per 100 samples of the cdrl-cifar10 architecture (6 levels x 15 steps, and
   8, 5, 3 steps) and of DRL's (drl-cifar10, 6 x 30 steps, no initializer); on a CPU with a reduced batch, scaled to 100 and said so; on CUDA with the torch
   update, the Triton kernel, kernel + CUDA graphs, and + bf16 autocast.
Run it on an otherwise idle machine: the ratios compare timings taken seconds apart (the three
timings of a ratio take turns, best of the rounds). --quick checks that the script runs: one round, the
small networks, Table 5.8 at batch 1 and 3 steps, results under --out.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from ebmkit.langevin import langevin
from ebmkit.methods import build_method
from ebmkit.nets import EBMMLP, EBMResNet
from ebmkit.presets import load_preset

from cli import arguments


def best_times(fns: dict, repeats: int, device) -> dict[str, float]:
    """Minimum wall time of each fn() over `repeats` rounds after one warm-up round; the functions take
    turns within each round, so a slow spell of a shared machine hits them alike."""
    times = {name: [] for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            tic = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                times[name].append(time.perf_counter() - tic)
    return {name: min(t) for name, t in times.items()}


def best_time(fn, repeats: int, device) -> float:
    return best_times({"fn": fn}, repeats, device)["fn"]


def energy_networks(device) -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """The networks of the presets: (network in eval mode, input shape)."""
    nets = {"2-D MLP (cdrl-points)": (EBMMLP(2, 64, 3, 128), (2,)),
            "digits EBM (cdrl-digits)": (EBMResNet(1, [32, 64], 1, 128), (1, 8, 8)),
            "CDRL 32x32 EBM (cdrl-cifar10)": (EBMResNet(3, [128, 256, 256, 256], 8, 512), (3, 32, 32))}
    return {k: (net.to(device).eval().requires_grad_(False), shape) for k, (net, shape) in nets.items()}


def chain_timings(net, shape, batch: int, steps: int, repeats: int, device) -> dict[str, float]:
    g = torch.Generator(device).manual_seed(0)
    x0 = torch.randn((batch, *shape), generator=g, device=device)
    logsnr = torch.zeros(batch, device=device)
    f = lambda x: net(x, logsnr)  # noqa: E731

    def engine():
        langevin(f, x0, step_size=0.05, steps=steps, anchor=x0, anchor_precision=1.0, generator=g)

    def plain_loop():
        x = x0
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(x).sum(), x)
            x = x.detach() + 0.00125 * (grad - (x.detach() - x0)) + 0.05 * torch.randn(x.shape, generator=g, device=device)

    def floor():
        for _ in range(steps):
            x = x0.detach().requires_grad_(True)
            torch.autograd.grad(f(x).sum(), x)

    return best_times({"engine": engine, "plain_loop": plain_loop, "forward_backward": floor}, repeats, device)


def table_5_8(device, batch: int, repeats: int, steps: tuple[int, ...] = (15, 8, 5, 3),
              drl_steps: int = 30) -> dict[str, dict[str, float]]:
    """Seconds per 100 samples of the cdrl-cifar10 networks (initializer + EBM), for K = 15, 8, 5, 3, and of
    DRL's (drl-cifar10: the same EBM, no initializer, 6 x 30 steps); on CUDA for each execution variant: the
    torch update, the Triton kernel, + CUDA graphs, + bf16 autocast."""
    variants = {"torch": ("torch", False, "none")}
    if device.type == "cuda":
        variants.update({"triton": ("triton", False, "none"), "triton+graphs": ("triton", True, "none"),
                         "triton+graphs+bf16": ("triton", True, "bf16")})
    out = {}
    for name, (kernels, graphs, autocast) in variants.items():
        os.environ["EBMKIT_KERNELS"] = kernels
        speed = [f"speed.cuda_graphs={str(graphs).lower()}", f"speed.autocast={autocast}"]
        method = build_method(load_preset("cdrl-cifar10", speed), (3, 32, 32), device)
        drl = build_method(load_preset("drl-cifar10", speed), (3, 32, 32), device)
        out[name] = {}
        for label, m, k in [*((f"6x{k}", method, k) for k in steps), (f"DRL 6x{drl_steps}", drl, drl_steps)]:
            g = torch.Generator(device).manual_seed(0)
            seconds = best_time(lambda: m.sample_levels(batch, g, steps=k), repeats, device)
            out[name][label] = seconds * 100 / batch
    del os.environ["EBMKIT_KERNELS"]
    return out


def scaling_plot(rows: list[dict], path: Path) -> None:
    """Seconds of a chain against K, batch size and resolution, each with the other two at 15 / 16 / 16."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = {"steps": 15, "batch": 16, "resolution": 16}
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 2.8))
    for ax, key in zip(axes, base):
        pts = sorted((r[key], r["seconds"]) for r in rows if all(r[k] == v for k, v in base.items() if k != key))
        ax.plot(*zip(*pts), "o-")
        ax.set_xlabel({"steps": "Langevin steps K", "batch": "batch size", "resolution": "resolution (px)"}[key])
        ax.set_ylabel("seconds")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds after a warm-up round; the best counts.")
    args = arguments(parser, "runs/langevin-bench")
    device = torch.device(args.device)
    torch.manual_seed(0)
    repeats = 1 if args.quick else args.rounds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    report = {"device": name, "overhead": {}, "scaling": []}

    print(f"device: {name}")
    print(f"{'network':34s} {'batch':>5s} {'K':>3s} {'engine s':>9s} {'floor s':>8s} {'overhead':>8s} {'vs plain':>8s}")
    for label, (net, shape) in list(energy_networks(device).items())[:2 if args.quick else None]:
        batch = 16 if len(shape) == 3 and shape[-1] == 32 else 256
        t = chain_timings(net, shape, batch, 15, repeats, device)
        row = {**t, "batch": batch, "steps": 15, "overhead": t["engine"] / t["forward_backward"],
               "engine_vs_plain": t["engine"] / t["plain_loop"]}
        report["overhead"][label] = row
        print(f"{label:34s} {batch:5d} {15:3d} {t['engine']:9.4f} {t['forward_backward']:8.4f} "
              f"{row['overhead']:8.3f} {row['engine_vs_plain']:8.3f}")

    net = EBMResNet(3, [32, 64, 64], 1, 128).to(device).eval().requires_grad_(False)
    print("\nscaling (small 3-level EBM): seconds for K steps")
    configs = [(5, 16, 16), (15, 16, 16), (30, 16, 16), (15, 4, 16), (15, 64, 16), (15, 16, 8), (15, 16, 32)]
    for k, batch, res in configs[:2] if args.quick else configs:
        t = chain_timings(net, (3, res, res), batch, k, repeats, device)["engine"]
        report["scaling"].append({"steps": k, "batch": batch, "resolution": res, "seconds": t})
        print(f"K={k:3d} batch={batch:3d} {res}x{res}: {t:.4f} s")

    batch = 1 if args.quick else 4 if device.type == "cpu" else 100
    report["table_5_8"] = {"batch": batch, "seconds_per_100": table_5_8(device, batch, 1 if args.quick else 2,
                                                                        (3,) if args.quick else (15, 8, 5, 3),
                                                                        3 if args.quick else 30)}
    note = f" (batch {batch}, scaled to 100)" if batch != 100 else ""
    print(f"\nTable 5.8, cdrl-cifar10 networks, seconds per 100 samples{note}:")
    for variant, row in report["table_5_8"]["seconds_per_100"].items():
        print(f"  {variant:20s} " + ", ".join(f"{k}: {v:.2f}" for k, v in row.items()))
    (args.results / f"langevin_{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")
    scaling_plot(report["scaling"], args.results / f"langevin_{device.type}_scaling.png")


if __name__ == "__main__":
    main()
