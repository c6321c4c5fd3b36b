"""The CDRL initializer: a DDPM/ADM-style U-Net with residual output (thesis sec. 5.4.8.1).

Base width 64, channel multipliers (1, 1, 1), 3 residual blocks per resolution, attention at 16x16
and 8x8 plus the middle, dropout 0.1, GroupNorm(32), SiLU, scale-shift time conditioning and
zero-initialised output convs. It predicts the noised image directly: output = x + net(x), so at
initialisation it is exactly the identity.

Resampling between resolutions: "conv" (a stride-2 conv down, nearest-neighbour upsampling then a conv up)
or "resblock" (a residual block that average-pools / upsamples both its paths after the first
normalisation, as the authors' code does, AlvinZhuyx/CDRL models/unet.py; their GroupNorm eps is 1e-6).
"""

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .embedding import NoiseLevelEmbedding


def group_norm(ch: int, groups: int, eps: float = 1e-5) -> nn.GroupNorm:
    # gcd(ch, groups) = groups for the paper widths; it also divides odd widths of small configs
    return nn.GroupNorm(math.gcd(ch, groups), ch, eps)


def zero_init(module: nn.Module) -> nn.Module:
    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)
    return module


class ResBlock(nn.Module):
    """GN, SiLU, conv; GN * (1 + scale) + shift from Dense(SiLU(temb)); SiLU, dropout, zero conv; + skip."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, dropout: float, groups: int, eps: float = 1e-5,
                 resample: str | None = None):
        super().__init__()
        self.resample = resample  # None, "down" (2x2 average pooling) or "up" (nearest, x2), on both paths
        self.norm1 = group_norm(in_ch, groups, eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        if self.resample == "down":
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        elif self.resample == "up":
            h, x = F.interpolate(h, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(h)  # (B, out, H', W')
        scale, shift = self.temb_proj(F.silu(temb))[:, :, None, None].chunk(2, dim=1)  # (B, out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """GN, multi-head self-attention over the H*W positions, zero-initialised output projection, residual."""

    def __init__(self, ch: int, num_heads: int, groups: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(ch, groups, eps)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = zero_init(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, heads, HW, C/heads) each
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))  # (B, C, 2H, 2W)


class Stage(nn.ModuleList):
    """Layers applied in order; ResBlocks also receive the time embedding."""

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        return h


class UNet(nn.Module):
    """CDRL initializer (sec. 5.4.8.1): forward(x (B,C,H,W), logsnr (B,), label) -> x + net(x), (B,C,H,W)."""

    def __init__(self, in_channels: int, image_size: int, base_channels: int = 64,
                 channel_mult: Sequence[int] = (1, 1, 1), num_res_blocks: int = 3,
                 attn_resolutions: Sequence[int] = (16, 8), dropout: float = 0.1, temb_dim: int = 256,
                 num_heads: int = 1, norm_groups: int = 32, num_classes: int = 0, resample: str = "conv",
                 norm_eps: float = 1e-5):
        super().__init__()
        if image_size % 2 ** (len(channel_mult) - 1):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{len(channel_mult) - 1}")
        if resample not in ("conv", "resblock"):
            raise ValueError(f"resample {resample!r} is not 'conv' or 'resblock'")

        def block(i: int, o: int, direction: str | None = None) -> ResBlock:
            return ResBlock(i, o, temb_dim, dropout, norm_groups, norm_eps, direction)

        def attn(c: int) -> Attention:
            return Attention(c, num_heads, norm_groups, norm_eps)

        def down(c: int) -> nn.Module:
            return block(c, c, "down") if resample == "resblock" else Downsample(c)

        def up(c: int) -> nn.Module:
            return block(c, c, "up") if resample == "resblock" else Upsample(c)

        self.temb = NoiseLevelEmbedding(base_channels, temb_dim, F.silu, num_classes)
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        # down path: record the width of every output that the up path will concatenate
        ch, res, skips = base_channels, image_size, [base_channels]
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [block(ch, base_channels * mult)]
                ch = base_channels * mult
                if res in attn_resolutions:
                    layers.append(attn(ch))
                self.down.append(Stage(layers))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Stage([down(ch)]))
                skips.append(ch)
                res //= 2

        self.mid = Stage([block(ch, ch), attn(ch), block(ch, ch)])

        # up path: num_res_blocks + 1 blocks per resolution, each eating one skip
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [block(ch + skips.pop(), base_channels * mult)]
                ch = base_channels * mult
                if res in attn_resolutions:
                    layers.append(attn(ch))
                if level > 0 and i == num_res_blocks:
                    layers.append(up(ch))
                    res *= 2
                self.up.append(Stage(layers))

        self.out = nn.Sequential(group_norm(ch, norm_groups, norm_eps), nn.SiLU(),
                                 zero_init(nn.Conv2d(ch, in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.temb(logsnr.expand(x.shape[0]), label)  # (B, temb_dim)
        h = self.stem(x)  # (B, base, H, W)
        hs = [h]
        for stage in self.down:
            h = stage(h, temb)
            hs.append(h)
        h = self.mid(h, temb)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), temb)
        return x + self.out(h)  # (B, C, H, W)
