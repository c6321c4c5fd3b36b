"""The conditional NeRF of NeRF-LEBM (thesis ch. 3): g_theta(x, d, z_s, z_a) -> (sigma, c), Eq. 3.2.

ConditionalNeRF is Fig. 3.1 (known camera poses; implementation notes): each latent passes a mapping MLP
applied to 30 * normalize(z); the trunk g^1 reads the positional encoding of x with the mapped z_s
(8 ReLU layers of width 256, the input joined again after layer 4); the density head g^3 is a softplus;
the colour branch g^2 reads the trunk features, the encoding of the view direction and the mapped z_a,
and ends in 0.5 (tanh + 1), so colours lie in [0, 1]. With `fine`, a second trunk and heads of the same shape
(`fine.*`) read the same mapped latents: NeRF's fine network for hierarchical sampling (the authors' amortized
Carla code; not in the thesis), which the renderer queries at importance-sampled depths.

FiLMNeRF is Fig. 3.2 (unknown poses, pi-GAN style): sine layers whose frequencies and phases are set by
FiLM from the mapped z_s (trunk) and z_a (colour head).

Both take points (B, P, 3), unit directions (B, P, 3) and latents (B, dim) for B objects with P points
each, and return sigma (B, P) >= 0 and rgb (B, P, 3) in [0, 1].
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LATENT_SCALE = 30.0  # the mapping networks read 30 * normalize(z) (implementation notes)


def positional_encoding(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """(..., D) -> (..., D (1 + 2 L)): x, then sin(2^k x) and cos(2^k x) for k < L (NeRF's encoding)."""
    freqs = 2.0 ** torch.arange(num_freqs, dtype=x.dtype, device=x.device)  # (L,)
    angles = (x[..., None, :] * freqs[:, None]).flatten(-2)                   # (..., L D)
    return torch.cat([x, angles.sin(), angles.cos()], -1)


class MappingNetwork(nn.Module):
    """z (B, dim) -> (B, out): 30 * normalize(z), then Linear + leaky-ReLU(0.2) layers (sec. 3.5.2.1)."""

    def __init__(self, dim: int, hidden: int, out: int, num_layers: int = 4):
        super().__init__()
        widths = [dim] + [hidden] * (num_layers - 1) + [out]
        self.net = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(LATENT_SCALE * F.normalize(z, dim=-1))


class NeRFField(nn.Module):
    """g^1 (trunk of `depth` ReLU layers of `width`, the input joined again at layer `skip`), g^3 (softplus density)
    and g^2 (colour from the trunk's features and the view input, 0.5 (tanh + 1)) on encoded inputs."""

    def __init__(self, d_in: int, d_view: int, width: int, depth: int, skip: int):
        super().__init__()
        self.add_layers(d_in, d_view, width, depth, skip)

    def add_layers(self, d_in: int, d_view: int, width: int, depth: int, skip: int) -> None:
        self.skip = skip
        self.trunk = nn.ModuleList(
            nn.Linear(d_in if i == 0 else width + (d_in if i == skip else 0), width) for i in range(depth))
        self.sigma = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour = nn.Sequential(nn.Linear(width + d_view, width // 2), nn.ReLU(), nn.Linear(width // 2, 3))

    def field(self, inp: torch.Tensor, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inp (B, P, d_in): encoded x and mapped z_s; view (B, P, d_view): encoded d and mapped z_a."""
        h = inp
        for i, layer in enumerate(self.trunk):
            h = F.relu(layer(torch.cat([h, inp], -1) if i == self.skip and i > 0 else h))
        sigma = F.softplus(self.sigma(h)).squeeze(-1)                                    # g^3, (B, P)
        rgb = 0.5 * (torch.tanh(self.colour(torch.cat([self.feature(h), view], -1))) + 1)  # g^2, (B, P, 3)
        return sigma, rgb


class ConditionalNeRF(NeRFField):
    """Fig. 3.1. width/depth/skip: the trunk (256/8/4 in the paper); freqs_xyz/freqs_dir: positional
    encodings (10/4); z_dim: latent size (128); map_hidden, map_out: the mapping MLPs (256, 128); fine: add a
    fine network of the same shape (module docstring)."""

    def __init__(self, z_dim: int = 128, width: int = 256, depth: int = 8, skip: int = 4, freqs_xyz: int = 10,
                 freqs_dir: int = 4, map_hidden: int = 256, map_out: int = 128, fine: bool = False):
        nn.Module.__init__(self)  # the mapping MLPs first: a seed initialises the coarse network as it always has
        self.freqs_xyz, self.freqs_dir = freqs_xyz, freqs_dir
        self.map_shape = MappingNetwork(z_dim, map_hidden, map_out)
        self.map_app = MappingNetwork(z_dim, map_hidden, map_out)
        d_in, d_view = 3 * (1 + 2 * freqs_xyz) + map_out, 3 * (1 + 2 * freqs_dir) + map_out
        self.add_layers(d_in, d_view, width, depth, skip)
        self.fine = NeRFField(d_in, d_view, width, depth, skip) if fine else None

    def forward(self, x: torch.Tensor, d: torch.Tensor, z_shape: torch.Tensor, z_app: torch.Tensor,
                fine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The coarse network's (sigma, rgb), or with `fine` the fine network's."""
        p = x.shape[1]
        s = self.map_shape(z_shape)[:, None].expand(-1, p, -1)                           # (B, P, map_out)
        a = self.map_app(z_app)[:, None].expand(-1, p, -1)
        net = self.fine if fine else self
        return net.field(torch.cat([positional_encoding(x, self.freqs_xyz), s], -1),
                         torch.cat([positional_encoding(d, self.freqs_dir), a], -1))


class FiLMSine(nn.Module):
    """sin(gamma * (W h + b) + beta), gamma and beta per object (pi-GAN's FiLM-ed SIREN layer)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return torch.sin(gamma[:, None] * self.linear(h) + beta[:, None])


class FiLMNeRF(nn.Module):
    """Fig. 3.2: z_s sets the FiLM of the first `depth` sine layers, z_a that of the colour layer."""

    def __init__(self, z_dim: int = 128, width: int = 256, depth: int = 4, map_hidden: int = 256):
        super().__init__()
        self.depth, self.width = depth, width
        self.map_shape = MappingNetwork(z_dim, map_hidden, 2 * width * depth)
        self.map_app = MappingNetwork(z_dim, map_hidden, 2 * width)
        self.trunk = nn.ModuleList(FiLMSine(3 if i == 0 else width, width) for i in range(depth))
        self.sigma = nn.Linear(width, 1)
        self.colour_film = FiLMSine(width + 3, width)
        self.colour = nn.Linear(width, 3)
        with torch.no_grad():  # pi-GAN's initialisation: the first layer uniform(+-1 / fan_in), the other sine
            first = self.trunk[0].linear                          # layers uniform(+-sqrt(6 / fan_in) / 30)
            first.weight.uniform_(-1 / first.in_features, 1 / first.in_features)
            for layer in list(self.trunk)[1:] + [self.colour_film]:
                bound = math.sqrt(6 / layer.linear.in_features) / 30
                layer.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, d: torch.Tensor, z_shape: torch.Tensor,
                z_app: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        film_s = self.map_shape(z_shape).view(len(x), self.depth, 2, self.width)          # (B, depth, 2, W)
        gamma_s, beta_s = 15 * film_s[:, :, 0] + 30, film_s[:, :, 1]                    # pi-GAN's frequency offset
        h = x
        for i, layer in enumerate(self.trunk):
            h = layer(h, gamma_s[:, i], beta_s[:, i])
        sigma = F.softplus(self.sigma(h)).squeeze(-1)                                    # (B, P)
        gamma_a, beta_a = self.map_app(z_app).view(len(x), 2, self.width).unbind(1)
        c = self.colour_film(torch.cat([h, d], -1), 15 * gamma_a + 30, beta_a)
        rgb = 0.5 * (torch.tanh(self.colour(c)) + 1)                                     # (B, P, 3)
        return sigma, rgb
