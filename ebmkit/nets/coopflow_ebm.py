"""The EBMs of CoopFlow (thesis ch. 4): f_theta(x), the negative energy of Eq. 4.1, a bottom-up network
with a scalar output. No normalisation, no time embedding, no labels.

CoopFlowEBM is Table 4.3 for images; SwishMLP is its analogue for 2-D points (sec. 4.4.1, Fig. 4.3).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    """Table 4.3b: [3x3 conv, swish, 3x3 conv, swish] + [3x3 conv, swish] on the input, then 2x2 average
    pooling. (B, c_in, H, W) -> (B, c_out, H/2, W/2); the first conv keeps c_in channels (authors' code)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv2(F.silu(self.conv1(x))))  # (B, c_out, H, W); silu is swish
        return F.avg_pool2d(h + F.silu(self.shortcut(x)), 2)


class CoopFlowEBM(nn.Module):
    """Table 4.3a. forward(x (B, C, H, W)) -> f (B,).

    3x3 conv to channels[0], swish; one residual block per further entry of `channels` (each halves the
    resolution); a head conv to `head_channels`, swish; sum. Paper: channels (128, 256, 512, 1024) at
    32x32, so the head sees 4x4 and outputs 1x1x100. head = "thesis": 3x3 conv, stride 4, pad 0 (Table
    4.3); "authors": 4x4 conv, stride 1, pad 0 (authors' code; 45.9M parameters with Flow++, Table 4.8).
    head_swish: swish on the head's outputs before the sum (Table 4.3); False sums the raw conv outputs, as the
    authors' code (models/ebm/ebm.py EBM_res) does.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, channels=(128, 256, 512, 1024),
                 head_channels: int = 100, head: str = "thesis", head_swish: bool = True):
        super().__init__()
        final = image_size // 2 ** (len(channels) - 1)
        kernel, stride = (3, 4) if head == "thesis" else (4, 1)
        if image_size % 2 ** (len(channels) - 1) or final < kernel:
            raise ValueError(f"{len(channels) - 1} residual blocks take {image_size}x{image_size} images to "
                             f"{final}x{final}, too small for the {kernel}x{kernel} head conv")
        self.stem = nn.Conv2d(in_channels, channels[0], 3, 1, 1)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.head = nn.Conv2d(channels[-1], head_channels, kernel, stride, 0)
        self.head_swish = head_swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.stem(x))  # (B, channels[0], H, W)
        for block in self.blocks:
            h = block(h)          # (B, channels[i + 1], H / 2^(i + 1), W / 2^(i + 1))
        out = self.head(h)        # (B, head_channels, 1, 1)
        return (F.silu(out) if self.head_swish else out).flatten(1).sum(1)  # (B,)


class SwishMLP(nn.Module):
    """f(x) for points: forward(x (B, dim)) -> (B,). `num_layers` Linear + swish layers of width `hidden`,
    then a linear map to a scalar."""

    def __init__(self, dim: int = 2, hidden: int = 128, num_layers: int = 3):
        super().__init__()
        layers, width = [], dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
