"""How much a conditional CDRL EBM knows about each attribute: the EBM read as a classifier.

    python docs/diagnostics/cdrl_label_readout.py runs/cdrl-shapes-compose/model.safetensors [--num 1000]

Real test images are noised to each level t; for every value c of an attribute the EMA EBM gives
f_hat(y_t; lambda_t, c). The readout picks the value with the largest f_hat after subtracting each
value's mean over the images (a per-label offset says nothing about the image). Guided and composed
sampling (Eq. 5.9, 5.12) follow grad f(y; c) - grad f(y; null), so an attribute the readout misses is
one that sampling cannot impose. Works for class-conditional models too (one attribute, the class).
Prints accuracy per attribute and level; chance is 1 / number of values.
"""

import argparse

import torch

from ebmkit.data import from_config
from ebmkit.methods import load_model


@torch.no_grad()
def readout(method, x0: torch.Tensor, labels: list[int], level: int, generator: torch.Generator) -> torch.Tensor:
    """(N,) index into `labels` of the label whose centred f_hat is largest, for x0 noised to `level`."""
    lv, ebm = method.levels, method.ema["ebm"]
    x_t = lv.alpha_bar[level] * x0 + lv.sigma_bar[level] * torch.randn(x0.shape, generator=generator)
    y, logsnr = lv.y_scale[level] * x_t, lv.logsnr[level].expand(len(x0))
    f = torch.stack([torch.cat([ebm(yb, lb, torch.full((len(yb),), c)) for yb, lb in zip(y.split(250), logsnr.split(250))])
                     for c in labels], 1)  # (N, labels)
    return (f - f.mean(0)).argmax(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--num", type=int, default=1000, help="test images")
    args = parser.parse_args()
    method, step = load_model(args.model)
    cond = method.preset.conditioning
    data = from_config(method.preset.data, "test")
    idx = torch.arange(min(args.num, len(data)))
    x0 = data.model_space(idx)
    if cond.kind == "attributes":
        names, truths = cond.attributes, data.attributes[idx].T
    else:
        names, truths = ["class"], [data.labels[idx]]
    groups = {name: (list(labels), truth) for name, labels, truth in zip(names, cond.label_groups(), truths)}
    g = torch.Generator().manual_seed(0)
    levels = range(method.levels.num_levels)
    print(f"model step {step}, {len(idx)} test images; EBM readout accuracy per level (0 = least noise)")
    print("attribute  chance  " + "  ".join(f"t={t:<4d}" for t in levels))
    for name, (labels, truth) in groups.items():
        acc = [float((readout(method, x0, labels, t, g) == truth).float().mean()) for t in levels]
        print(f"{name:<10} {1 / len(labels):6.1%}  " + "  ".join(f"{a:6.1%}" for a in acc))


if __name__ == "__main__":
    main()
