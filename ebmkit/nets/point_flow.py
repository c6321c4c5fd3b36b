"""Coupling flows for points of dimension D >= 2, the normalizing flow of CoopFlow on point data (thesis
sec. 4.4.1, Figure 4.3).

Each layer is ActNorm followed by a coupling with a binary mask m that alternates between the coordinates:
the coordinates with m = 1 condition an MLP whose outputs transform the others. Two couplings:
- "affine" (RealNVP, Dinh et al. 2017): y = x * exp(s) + t, (s, t) = MLP(m * x), s = scale * tanh(.);
- "mixlogcdf", the coupling of Flow++ (Ho et al. 2019, sec. 3.2), the flow the thesis uses for CoopFlow
  (sec. 4.5.1), with an MLP in place of its convolutional network: y = (logit F(x) + b) * exp(a), F a
  K-component logistic mixture CDF. Its 1-D maps can be multimodal, so a few layers split mass between
  separated modes (concentric rings, say) where affine maps cannot.
The affine coupling starts as the identity (its MLP's last layer is zero). Points are unbounded: no logit
pre-processing.
"""

import torch
import torch.nn as nn

from .flow_layers import ActNorm, NormalPriorFlow, mixture_coupling, mixture_coupling_inverse, mixture_coupling_params

SQUASH = 4.0  # the mixture coupling's MLP sees its conditioning coordinates as SQUASH * tanh(x / SQUASH)


def _mlp(dim_in: int, hidden: int, num_hidden_layers: int, dim_out: int, zero_rows: int) -> nn.Sequential:
    """SiLU MLP whose last layer's first `zero_rows` outputs start at zero."""
    layers, width = [], dim_in
    for _ in range(num_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    net = nn.Sequential(*layers, nn.Linear(width, dim_out))
    with torch.no_grad():
        net[-1].weight[:zero_rows].zero_()
        net[-1].bias[:zero_rows].zero_()
    return net


class AffineCoupling(nn.Module):
    """forward(x (B, D)) -> (y, logdet (B,)): transforms the coordinates where mask == 0."""

    def __init__(self, dim: int, hidden: int, num_hidden_layers: int, parity: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float())  # 1 = conditioning coordinate
        self.net = _mlp(dim, hidden, num_hidden_layers, 2 * dim, zero_rows=2 * dim)  # starts as the identity
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


class MixLogCDFCoupling(nn.Module):
    """Flow++'s coupling on (B, D) points: forward(x) -> (y, logdet (B,)), transforming the coordinates
    where mask == 0 by y = (logit F(x) + b) * exp(a); the inverse solves for x by Newton steps."""

    def __init__(self, dim: int, hidden: int, num_hidden_layers: int, parity: int, num_components: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float())  # 1 = conditioning coordinate
        self.register_buffer("changed", torch.arange(1 - parity, dim, 2))  # the coordinates it transforms
        self.k, width = num_components, len(self.changed)
        # a = b = 0 at the start; the mixture outputs keep their random init, as in the authors' Flow++ (zeroed,
        # the K components would be equal and get equal gradients: one logistic for ever)
        self.net = _mlp(dim, hidden, num_hidden_layers, width * (2 + 3 * num_components), zero_rows=2 * width)
        self.rescale = nn.Parameter(torch.ones(width))  # a = rescale * tanh(.), as in Flow++

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The MLP sees the conditioning coordinates squashed to (-4, 4) (ours): a point far in the tails would
        # otherwise get linearly extrapolated log-scales and means, which the inverse turns into larger points
        # for the next layer, until they overflow (seen: log-scales of 4,000 from |z| = 3.5 after training)
        h = self.net(self.mask * SQUASH * torch.tanh(x / SQUASH))
        return mixture_coupling_params(h.unflatten(1, (2 + 3 * self.k, -1)), self.k, self.rescale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, log_dy = mixture_coupling(x[:, self.changed], self._params(x))
        return x.index_copy(1, self.changed, y), log_dy.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.index_copy(1, self.changed, mixture_coupling_inverse(y[:, self.changed], self._params(y)))


class PointFlow(NormalPriorFlow):
    """forward(x (B, dim)) -> (z, logdet), inverse(z) -> x, log_prob(x), sample(num, generator, temperature).
    `num_couplings` layers of ActNorm + coupling ("affine" or "mixlogcdf" with `num_components`), the mask
    alternating between layers."""

    def __init__(self, dim: int = 2, hidden: int = 64, num_couplings: int = 8, num_hidden_layers: int = 2,
                 coupling: str = "affine", num_components: int = 8):
        super().__init__()
        self.event_shape = (dim,)
        self.norms = nn.ModuleList(ActNorm(dim) for _ in range(num_couplings))
        if coupling == "affine":
            layers = (AffineCoupling(dim, hidden, num_hidden_layers, i % 2) for i in range(num_couplings))
        else:
            layers = (MixLogCDFCoupling(dim, hidden, num_hidden_layers, i % 2, num_components)
                      for i in range(num_couplings))
        self.couplings = nn.ModuleList(layers)

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
