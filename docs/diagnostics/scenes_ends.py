"""How well the procedural cars' views tell front from back: the mean squared difference (images in
[0, 1]) between a car seen from azimuth a and from a + 180 degrees (the other end), against views a few
degrees apart. A model whose reconstruction error is above the first cannot read a view's end from the
likelihood (the unknown-pose runs of NeRF-LEBM, sec. 3.4.4).

    python docs/diagnostics/scenes_ends.py --objects 20 --azimuths 4 --elevation 25 [--distinct-ends]

Held-out test cars, each from `--azimuths` random azimuths at one elevation; prints the mean over all views.
"""

import argparse
import math

import torch

from ebmkit.data.scenes import load_scenes, render

OFFSETS_DEG = (180.0, 5.0, 10.0, 20.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--azimuths", type=int, default=4)
    ap.add_argument("--elevation", type=float, default=25.0, help="degrees")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--distinct-ends", action="store_true", help="cars with lamps, a long hood and a short trunk")
    args = ap.parse_args()
    scenes = load_scenes("test", args.size, num_objects=args.objects, distinct_ends=args.distinct_ends)
    g = torch.Generator().manual_seed(0)
    offsets = torch.tensor([0.0, *OFFSETS_DEG]).deg2rad()                              # the view itself first
    diffs = []
    for o in range(args.objects):
        az = 2 * math.pi * torch.rand(args.azimuths, generator=g)
        poses = torch.stack([torch.full((len(offsets), args.azimuths), math.radians(args.elevation)),
                             az[None] + offsets[:, None]], -1).flatten(0, 1)        # (offsets x azimuths, 2)
        n = len(poses)
        img = render(scenes.shape_params[o].expand(n, -1), scenes.appearance_params[o].expand(n, -1), poses, args.size,
                     args.distinct_ends)
        img = img.view(len(offsets), args.azimuths, *img.shape[1:])
        diffs.append((img[1:] - img[:1]).pow(2).mean((2, 3, 4)))                      # (offsets, azimuths)
    mean = torch.cat(diffs, 1).mean(1)
    print(f"mean squared difference to the same car's view, {args.objects} {'distinct-ends ' * args.distinct_ends}"
          f"cars x {args.azimuths} azimuths, "
          f"elevation {args.elevation:g} degrees, {args.size} px:")
    for offset, value in zip(OFFSETS_DEG, mean.tolist()):
        print(f"  azimuth + {offset:5.1f} degrees: {value:.4f}")


if __name__ == "__main__":
    main()
