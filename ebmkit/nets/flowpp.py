"""Flow++ (Ho et al. 2019), the normalizing flow g_alpha of CoopFlow (thesis sec. 4.3 and 4.5.1).

x in model space [-1, 1] -> logit pre-processing y = logit((1 + bound x) / 2) = 2 artanh(bound x)
(bound 0.9) -> per scale: channel-wise couplings, then checkerboard couplings; squeeze (space to
depth) between scales -> z ~ N(0, I) of the same shape as x. Each coupling is a FlowStep (ActNorm,
1x1 conv, MixLogCDF coupling; see flowpp_coupling.py).

Paper layout (CIFAR-10, 3x32x32): scales ((0, 4), (2, 3)): 4 checkerboard couplings at 3x32x32,
squeeze, 2 channel-wise + 3 checkerboard couplings at 16x16. With factor_out=True (the default, as in
the authors' CoopFlow code, 28.8M parameters as in thesis Table 4.8) half of the 12 squeezed channels
go straight to z and the second scale works on 6x16x16; factor_out=False keeps all 12 channels
(4C x H/2 x W/2, the layout as the Flow++ paper states it; 30.8M parameters).

Discrete 8-bit data are dequantised by a variational flow q(u | x) (Flow++ sec. 3.1): eps ~ N(0, I)
-> 4 FlowSteps conditioned on x -> sigmoid -> u in (0, 1)^D; the bound on log P(x) is an ELBO.
"""

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .flow_layers import (NormalPriorFlow, checkerboard_merge, checkerboard_split, squeeze, standard_normal_logprob,
                          unsqueeze)
from .flowpp_coupling import FlowStep, GatedConv, wn_conv


class _Scale(nn.Module):
    """One resolution of Flow++: channel-wise steps on (B, C, H, W) [halves = channel halves], then
    checkerboard steps on its split (B, 2C, H, W/2) [halves = the two colours of the checkerboard]."""

    def __init__(self, channels: int, num_channelwise: int, num_checkerboard: int, **step_args):
        super().__init__()
        self.channelwise = nn.ModuleList(FlowStep(channels, **step_args) for _ in range(num_channelwise))
        self.checkerboard = nn.ModuleList(FlowStep(2 * channels, **step_args) for _ in range(num_checkerboard))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for step in self.channelwise:
            x, ld = step(x)
            logdet = logdet + ld
        h = checkerboard_split(x)
        for step in self.checkerboard:
            h, ld = step(h)
            logdet = logdet + ld
        return checkerboard_merge(h), logdet

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        h = checkerboard_split(x)
        for step in reversed(self.checkerboard):
            h = step.inverse(h)
        x = checkerboard_merge(h)
        for step in reversed(self.channelwise):
            x = step.inverse(x)
        return x


class VariationalDequantizer(nn.Module):
    """q(u | x) for u in (0, 1)^D: context = 3 gated convs on the checkerboard split of x; eps ~ N(0, I)
    -> `num_steps` FlowSteps on split(eps) whose couplings also see the context -> sigmoid. context_residual=False:
    the gated convs of the context are not residual (the authors' CoopFlow code)."""

    def __init__(self, in_channels: int, hidden: int, num_blocks: int, num_components: int, num_heads: int,
                 dropout: float, num_steps: int = 4, context_channels: int = 32, context_residual: bool = True):
        super().__init__()
        self.stem = wn_conv(2 * in_channels, context_channels, 3)
        self.context = nn.ModuleList(GatedConv(context_channels, dropout, residual=context_residual)
                                     for _ in range(3))
        self.steps = nn.ModuleList(FlowStep(2 * in_channels, hidden, num_blocks, num_components, num_heads, dropout,
                                            aux_channels=context_channels) for _ in range(num_steps))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> u (B, C, H, W) in (0, 1) and log q(u | x) (B,)."""
        aux = self.stem(checkerboard_split(x))  # (B, context, H, W/2)
        for block in self.context:
            aux = block(aux)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        log_q = standard_normal_logprob(eps)
        h = checkerboard_split(eps)  # (B, 2C, H, W/2)
        for step in self.steps:
            h, ld = step(h, aux)
            log_q = log_q - ld
        s = checkerboard_merge(h)
        log_q = log_q - (F.logsigmoid(s) + F.logsigmoid(-s)).flatten(1).sum(1)
        return torch.sigmoid(s), log_q


class FlowPP(NormalPriorFlow):
    """Flow++. forward(x) -> (z, logdet), inverse(z) -> x, log_prob(x), sample(num, generator,
    temperature), nll_bits_per_dim(x) for 8-bit data. Defaults are the paper configuration.

    `scales` lists (num_channelwise, num_checkerboard) per resolution. Note that inverse(z) lies in
    (-1/bound, 1/bound), slightly beyond [-1, 1]: the bounded logit leaves room at the edges.
    num_dequant_components: the dequantizer's K (default num_components); dequant_context_residual: see
    VariationalDequantizer; cdf_clamp: see mixture_coupling_inverse (0: the exact inverse).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_channels: int = 96, num_blocks: int = 10,
                 num_components: int = 32, num_heads: int = 4, dropout: float = 0.2,
                 scales: Sequence[Sequence[int]] = ((0, 4), (2, 3)), factor_out: bool = True,
                 use_dequant: bool = True, num_dequant_blocks: int = 2, bound: float = 0.9,
                 num_dequant_components: int | None = None, dequant_context_residual: bool = True,
                 cdf_clamp: float = 0.0):
        super().__init__()
        if image_size % 2 ** len(scales):
            raise ValueError(f"image_size={image_size} must be divisible by 2**len(scales) = {2 ** len(scales)}")
        self.event_shape = (in_channels, image_size, image_size)
        self.bound, self.factor_out = bound, factor_out
        step_args = dict(hidden=num_channels, num_blocks=num_blocks, num_components=num_components,
                         num_heads=num_heads, dropout=dropout, cdf_clamp=cdf_clamp)
        self.scales = nn.ModuleList()
        channels = in_channels
        for i, (num_channelwise, num_checkerboard) in enumerate(scales):
            if i > 0:
                channels = 2 * channels if factor_out else 4 * channels
            if num_channelwise and channels % 2:
                raise ValueError(f"channel-wise couplings need an even channel count, scale {i} has {channels}")
            self.scales.append(_Scale(channels, num_channelwise, num_checkerboard, **step_args))
        self.dequantizer = (VariationalDequantizer(in_channels, num_channels, num_dequant_blocks,
                                                   num_dequant_components or num_components, num_heads, dropout,
                                                   context_residual=dequant_context_residual)
                            if use_dequant else None)

    def forward(self, x: torch.Tensor, dequantize: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> z (B, C, H, W), logdet (B,) = log|det dz/dx|.

        dequantize=True reads x as 8-bit data in model space (see nll_bits_per_dim) and maps its dequantised
        version instead; logdet then also holds -log q(u | v) and the rescaling, so that
        -(log N(z) + logdet) is the dequantised negative log-likelihood in nats. Training goes through here
        (not a separate method) so that DDP sees the forward pass and averages the gradients."""
        if dequantize:
            w, extra = self._dequantize(x, generator)
            z, logdet = self(w)
            return z, logdet + extra
        bx = self.bound * x
        h = 2 * torch.atanh(bx)  # logit((1 + bound x) / 2)
        logdet = (math.log(2 * self.bound) - torch.log1p(-bx * bx)).flatten(1).sum(1)
        factored = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                h = squeeze(h)  # (B, 4C, H/2, W/2)
                if self.factor_out:
                    h, rest = h.chunk(2, dim=1)
                    factored.append(rest)
            h, ld = scale(h)
            logdet = logdet + ld
        for _ in range(len(self.scales) - 1):
            h = unsqueeze(torch.cat([h, factored.pop()], dim=1) if self.factor_out else h)
        return h, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, C, H, W) -> x (B, C, H, W)."""
        h, factored = z, []
        for _ in range(len(self.scales) - 1):
            h = squeeze(h)
            if self.factor_out:
                h, rest = h.chunk(2, dim=1)
                factored.append(rest)
        for i in reversed(range(len(self.scales))):
            h = self.scales[i].inverse(h)
            if i > 0:
                h = unsqueeze(torch.cat([h, factored.pop()], dim=1) if self.factor_out else h)
        return torch.tanh(0.5 * h) / self.bound

    def _dequantize(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """8-bit x = v / 127.5 - 1 -> (w / 128 - 1 in [-1, 1), (B,) -log q(u | v) - D log 128) with
        w = v + u, u from q(u | v) (use_dequant) or uniform: one draw per image, with `generator`."""
        v = torch.round((x + 1) * 127.5)  # (B, C, H, W) pixel values
        if self.dequantizer is not None:
            u, log_q = self.dequantizer(x, generator)
        else:
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            log_q = torch.zeros_like(x[:, 0, 0, 0])
        return (v + u) / 128 - 1, -log_q - x[0].numel() * math.log(128)

    def nll_bits_per_dim(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) dequantised negative log-likelihood, in bits per dimension, of 8-bit data in model space.

        x = v / 127.5 - 1 with pixel values v in {0..255}. The continuous variable w = v + u in [0, 256)
        (u from q(u | v) with use_dequant, else uniform) enters the flow as w / 128 - 1 in [-1, 1), so
        log p(w) = log p_flow(w / 128 - 1) - D log 128, and -log P(v) <= E_q[log q(u | v) - log p(w)].
        One sample of u (drawn with `generator`) per image; the figure is comparable to the literature's.
        """
        z, logdet = self(x, dequantize=True, generator=generator)
        return -(standard_normal_logprob(z) + logdet) / (x[0].numel() * math.log(2))
