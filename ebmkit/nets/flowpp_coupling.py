"""The Flow++ coupling layer (Ho et al. 2019, sec. 3.2-3.3), the normalizing flow of CoopFlow (thesis sec. 4.5.1).

A coupling transforms one half x_a of its input given the other half x_b:
    y_a = (logit F(x_a; pi, mu, s) + b) * exp(a),   (a, b, pi, mu, s) = NN(x_b),
F being a K-component logistic-mixture CDF ("MixLogCDF"). NN is a stack of gated convolutions and
gated multi-head self-attention (PixelCNN++ and Transformer blocks), all weight-normalised, with
layer norm after each residual block. The output convolution starts at zero, so every coupling
starts as the identity (Glow's zero initialisation).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from .embedding import sinusoidal_embedding
from .flow_layers import ActNorm, InvConv1x1, mixture_coupling, mixture_coupling_inverse, mixture_coupling_params


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, 2C, ...): ELU of [x, -x] (PixelCNN++)."""
    return F.elu(torch.cat([x, -x], dim=1))


def wn_conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.Module:
    return weight_norm(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor, at every pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GatedConv(nn.Module):
    """x + GLU(conv1x1(dropout(celu(conv3x3(celu(x)) + conv1x1(celu(aux)))))), celu = concat_elu; without the
    x + when residual is False."""

    def __init__(self, channels: int, dropout: float, aux_channels: int = 0, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.conv = wn_conv(2 * channels, channels, 3)
        self.aux_conv = wn_conv(2 * aux_channels, channels, 1) if aux_channels else None
        self.drop = nn.Dropout(dropout)
        self.gate = wn_conv(2 * channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(concat_elu(x))  # (B, C, H, W)
        if self.aux_conv is not None:
            h = h + self.aux_conv(concat_elu(aux))
        a, g = self.gate(self.drop(concat_elu(h))).chunk(2, dim=1)
        return x + a * torch.sigmoid(g) if self.residual else a * torch.sigmoid(g)


class GatedAttention(nn.Module):
    """x + GLU(Linear(MHSA(x + sinusoidal position))) over the H*W pixels, dropout on the attention weights."""

    def __init__(self, channels: int, num_heads: int, dropout: float):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_channels={channels} must be divisible by num_heads={num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = weight_norm(nn.Linear(channels, 3 * channels, bias=False))
        self.gate = weight_norm(nn.Linear(channels, 2 * channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = x.flatten(2).transpose(1, 2)  # (B, L, C), L = H W
        pos = sinusoidal_embedding(torch.arange(h * w, dtype=x.dtype, device=x.device), c, scale=1.0)  # (L, C)
        qkv = self.qkv(seq + pos).view(b, h * w, 3, self.num_heads, -1)  # (B, L, 3, heads, C/heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, heads, L, C/heads) each
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        a, g = self.gate(out.transpose(1, 2).reshape(b, h * w, c)).chunk(2, dim=-1)  # (B, L, C) each
        return x + (a * torch.sigmoid(g)).transpose(1, 2).reshape(b, c, h, w)


class ConvAttnBlock(nn.Module):
    """Gated conv -> LayerNorm [-> gated attention -> LayerNorm when num_heads > 0]."""

    def __init__(self, channels: int, num_heads: int, dropout: float, aux_channels: int = 0):
        super().__init__()
        self.conv = GatedConv(channels, dropout, aux_channels)
        self.norm_conv = ChannelLayerNorm(channels)
        self.attn = GatedAttention(channels, num_heads, dropout) if num_heads > 0 else None
        self.norm_attn = ChannelLayerNorm(channels) if num_heads > 0 else None

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm_conv(self.conv(x, aux))
        if self.attn is not None:
            x = self.norm_attn(self.attn(x))
        return x


class MixLogCDFCoupling(nn.Module):
    """Transforms the first half of a (B, 2C, H, W) tensor given the second, and swaps the halves:
    forward([x_a, x_b]) -> ([x_b, y_a], logdet (B,)); inverse bisects the mixture CDF."""

    def __init__(self, channels: int, hidden: int, num_blocks: int, num_components: int, num_heads: int,
                 dropout: float, aux_channels: int = 0, cdf_clamp: float = 0.0):
        super().__init__()
        self.k, self.cdf_clamp = num_components, cdf_clamp
        self.stem = wn_conv(channels, hidden, 3)
        self.blocks = nn.ModuleList(ConvAttnBlock(hidden, num_heads, dropout, aux_channels)
                                    for _ in range(num_blocks))
        self.out = wn_conv(hidden, channels * (2 + 3 * num_components), 3)
        with torch.no_grad():  # a = b = 0 at the start; the mixture rows keep their random init, as the authors'
            self.out.parametrizations.weight.original0[:2 * channels].zero_()  # (zeroed, the K components would
            self.out.bias[:2 * channels].zero_()  # be equal and get equal gradients: one logistic for ever)
        self.rescale = nn.Parameter(torch.ones(channels, 1, 1))  # a = rescale * tanh(.)

    def _params(self, x_b: torch.Tensor, aux: torch.Tensor | None):
        h = self.stem(x_b)  # (B, hidden, H, W)
        for block in self.blocks:
            h = block(h, aux)
        return mixture_coupling_params(self.out(h).unflatten(1, (2 + 3 * self.k, -1)), self.k, self.rescale)

    def forward(self, h: torch.Tensor, aux: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x_a, x_b = h.chunk(2, dim=1)
        y, log_dy = mixture_coupling(x_a, self._params(x_b, aux))
        return torch.cat([x_b, y], dim=1), log_dy.flatten(1).sum(1)

    def inverse(self, h: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        x_b, y = h.chunk(2, dim=1)
        return torch.cat([mixture_coupling_inverse(y, self._params(x_b, aux), self.cdf_clamp), x_b], dim=1)


class FlowStep(nn.Module):
    """ActNorm -> invertible 1x1 conv -> MixLogCDF coupling on a (B, channels, H, W) tensor whose two
    channel halves are the coupling's halves (Flow++ sec. 3.3)."""

    def __init__(self, channels: int, hidden: int, num_blocks: int, num_components: int, num_heads: int,
                 dropout: float, aux_channels: int = 0, cdf_clamp: float = 0.0):
        super().__init__()
        self.norm = ActNorm(channels)
        self.mix = InvConv1x1(channels)
        self.coupling = MixLogCDFCoupling(channels // 2, hidden, num_blocks, num_components, num_heads,
                                          dropout, aux_channels, cdf_clamp)

    def forward(self, h: torch.Tensor, aux: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h, ld_norm = self.norm(h)
        h, ld_mix = self.mix(h)
        h, ld_coupling = self.coupling(h, aux)
        return h, ld_norm + ld_mix + ld_coupling

    def inverse(self, h: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm.inverse(self.mix.inverse(self.coupling.inverse(h, aux)))
