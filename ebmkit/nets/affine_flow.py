"""RealNVP-style flow for 2-D points (Dinh et al. 2017), the normalizing flow of the CoopFlow toy
experiment (thesis sec. 4.4.1, Figure 4.3).

Each layer is ActNorm followed by an affine coupling with a binary mask m that alternates between
the coordinates: y = m * x + (1 - m) * (x * exp(s) + t), (s, t) = MLP(m * x), s = scale * tanh(.).
The last layer of each MLP starts at zero, so every coupling starts as the identity. Points are
unbounded: no logit pre-processing.
"""

import torch
import torch.nn as nn

from .flow_layers import ActNorm, NormalPriorFlow


class AffineCoupling(nn.Module):
    """forward(x (B, D)) -> (y, logdet (B,)): transforms the coordinates where mask == 0."""

    def __init__(self, dim: int, hidden: int, num_hidden_layers: int, parity: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float())  # 1 = conditioning coordinate
        layers, width = [], dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(dim))

    def _shift_log_scale(self, x_cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_cond).chunk(2, dim=1)  # (B, D) each
        keep = 1 - self.mask
        return keep * self.scale * torch.tanh(s), keep * t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._shift_log_scale(self.mask * x)
        return x * s.exp() + t, s.sum(1)  # s = t = 0 on the conditioning coordinates

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._shift_log_scale(self.mask * y)
        return (y - t) * (-s).exp()


class AffineCouplingFlow(NormalPriorFlow):
    """forward(x (B, dim)) -> (z, logdet), inverse(z) -> x, log_prob(x), sample(num, generator, temperature).
    `num_couplings` layers of ActNorm + affine coupling, the mask alternating between layers."""

    def __init__(self, dim: int = 2, hidden: int = 64, num_couplings: int = 8, num_hidden_layers: int = 2):
        super().__init__()
        self.event_shape = (dim,)
        self.norms = nn.ModuleList(ActNorm(dim) for _ in range(num_couplings))
        self.couplings = nn.ModuleList(AffineCoupling(dim, hidden, num_hidden_layers, i % 2)
                                       for i in range(num_couplings))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for norm, coupling in zip(self.norms, self.couplings):
            x, ld_norm = norm(x)
            x, ld_coupling = coupling(x)
            logdet = logdet + ld_norm + ld_coupling
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for norm, coupling in zip(reversed(self.norms), reversed(self.couplings)):
            z = norm.inverse(coupling.inverse(z))
        return z
