"""The CDRL energy network (thesis sec. 5.4.8.1, Tables 5.6 and 5.7; after Gao et al. 2021).

f_hat(x, lambda) = < sum_space relu(h(x, temb)), W lrelu(temb) >, with h a spectrally normalised
ResNet: a 3x3 conv stem, then per resolution N residual blocks and 2x2 average pooling between
resolutions. The method turns f_hat into an energy by dividing by the squared Langevin step size.
"""

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .embedding import NoiseLevelEmbedding, maybe_spectral_norm


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def conv3x3(in_ch: int, out_ch: int, sn: bool) -> nn.Module:
    return maybe_spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1), sn)


class ResBlock(nn.Module):
    """Table 5.6a: lrelu, conv; + lrelu(Dense(lrelu(temb))); lrelu, conv, * gain; + shortcut(input)."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, sn: bool):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, sn)
        self.temb_proj = maybe_spectral_norm(nn.Linear(temb_dim, out_ch), sn)
        self.conv2 = conv3x3(out_ch, out_ch, sn)
        self.gain = nn.Parameter(torch.ones(out_ch, 1, 1))
        self.shortcut = conv3x3(in_ch, out_ch, sn) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(lrelu(x))  # (B, out, H, W)
        h = h + lrelu(self.temb_proj(lrelu(temb)))[:, :, None, None]
        h = self.conv2(lrelu(h)) * self.gain
        return h + self.shortcut(x)


class EBMResNet(nn.Module):
    """CDRL EBM. Paper configs (Table 5.7, 32x32): channels (128, 256, 256, 256), 8 blocks, temb_dim 512;
    large: (256, 512, 512, 512), 8 blocks, temb_dim 1024. forward -> (B,) network output f_hat."""

    def __init__(self, in_channels: int, channels: Sequence[int], num_res_blocks: int, temb_dim: int,
                 spectral_norm: bool = True, num_classes: int = 0, noise_input: str = "logsnr"):
        super().__init__()
        self.temb = NoiseLevelEmbedding(temb_dim // 4, temb_dim, lrelu, num_classes, spectral_norm, noise_input)
        self.stem = conv3x3(in_channels, channels[0], spectral_norm)
        self.levels = nn.ModuleList()
        ch = channels[0]
        for out_ch in channels:  # Table 5.6b: N ResBlocks per resolution
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, out_ch, temb_dim, spectral_norm))
                ch = out_ch
            self.levels.append(nn.ModuleList(blocks))
        self.head = nn.Linear(temb_dim, ch, bias=False)

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.temb(logsnr.expand(x.shape[0]), label)  # (B, temb_dim)
        h = self.stem(x)  # (B, channels[0], H, W)
        for i, blocks in enumerate(self.levels):
            if i > 0:
                h = F.avg_pool2d(h, 2)  # 2x2 pooling between resolutions, not after the last
            for block in blocks:
                h = block(h, temb)
        h = F.relu(h).sum(dim=(2, 3))  # (B, channels[-1])
        return (h * self.head(lrelu(temb))).sum(dim=1)  # (B,)
