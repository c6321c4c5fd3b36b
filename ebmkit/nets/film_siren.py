"""FiLMSiren: the generator of the authors' unknown-pose code (AlvinZhuyx/NeRF-LEBM, Carla_amortized_without_pose),
pi-GAN's TALLSIREN, their version of Fig. 3.2 (generator.arch = "film-siren").

- Mapping networks read z itself (no normalisation, unlike Fig. 3.1's): Linear + leaky-ReLU(0.2) layers and a last
  linear layer whose output is [frequencies | phase shifts], each frequency f used as 15 f + 30 (pi-GAN's offset).
- `depth` FiLM-ed sine layers sin(gamma (W h + b) + beta) on the point x, layer i taking the i-th width-slice of
  z_s's frequencies and phases; then `depth` plain sine layers sin(W h + b) (their transform network).
- Density sigma = softplus(linear(h)); colour: a FiLM-ed sine layer on [d, h] with z_a's frequencies and phases,
  a linear layer, then a sigmoid (their raw2outputs reads raw density and colour so).

Points (B, P, 3), unit directions (B, P, 3), latents (B, dim) -> sigma (B, P) >= 0, rgb (B, P, 3) in [0, 1].
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ebmkit.nets.nerf import FiLMSine

FREQ_SCALE, FREQ_OFFSET = 15.0, 30.0  # gamma = 15 f + 30
SIREN_INIT = 25.0                     # their layers start uniform(+-sqrt(6 / fan_in) / 25)


class FiLMMapping(nn.Module):
    """z (B, dim) -> frequencies (B, out) and phase shifts (B, out): 3 Linear + leaky-ReLU(0.2), a last Linear."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        widths = [dim, hidden, hidden, hidden]
        layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 2 * out))
        with torch.no_grad():  # pi-GAN's initialisation
            for layer in self.net[::2]:
                nn.init.kaiming_normal_(layer.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            self.net[-1].weight *= 0.25

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freq, phase = self.net(z).chunk(2, -1)
        return FREQ_SCALE * freq + FREQ_OFFSET, phase


class FiLMSiren(nn.Module):
    """width: the sine layers (256); depth: FiLM-ed layers, and plain sine layers after them (4); map_hidden: the
    mapping networks (256)."""

    def __init__(self, z_dim: int = 128, width: int = 256, depth: int = 4, map_hidden: int = 256):
        super().__init__()
        self.depth, self.width = depth, width
        self.map_shape = FiLMMapping(z_dim, map_hidden, depth * width)
        self.map_app = FiLMMapping(z_dim, map_hidden, width)
        self.film = nn.ModuleList(FiLMSine(3 if i == 0 else width, width) for i in range(depth))
        self.sine = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.sigma = nn.Linear(width, 1)
        self.colour_film = FiLMSine(3 + width, width)
        self.colour = nn.Linear(width, 3)
        with torch.no_grad():  # pi-GAN's initialisation: the first layer uniform(+-1 / fan_in)
            for layer in [m.linear for m in [*self.film, self.colour_film]] + [*self.sine, self.sigma, self.colour]:
                bound = math.sqrt(6 / layer.in_features) / SIREN_INIT
                layer.weight.uniform_(-bound, bound)
            first = self.film[0].linear
            first.weight.uniform_(-1 / first.in_features, 1 / first.in_features)

    def forward(self, x: torch.Tensor, d: torch.Tensor, z_shape: torch.Tensor,
                z_app: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gamma_s, beta_s = (t.view(len(x), self.depth, self.width) for t in self.map_shape(z_shape))  # (B, depth, W)
        h = x
        for i, layer in enumerate(self.film):
            h = layer(h, gamma_s[:, i], beta_s[:, i])
        for layer in self.sine:
            h = torch.sin(layer(h))
        sigma = F.softplus(self.sigma(h)).squeeze(-1)                                    # (B, P)
        gamma_a, beta_a = self.map_app(z_app)                                            # (B, W)
        rgb = torch.sigmoid(self.colour(self.colour_film(torch.cat([d, h], -1), gamma_a, beta_a)))  # (B, P, 3)
        return sigma, rgb
