"""Fully connected analogues of the CDRL networks, for 2-D toy data (thesis sec. 5.4.1, Figure 5.5).

EBMMLP mirrors EBMResNet (Table 5.6) and InitMLP mirrors the U-Net residual block (sec. 5.4.8.1).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ebm_resnet import lrelu
from .embedding import NoiseLevelEmbedding, maybe_spectral_norm
from .unet import zero_init


class EBMBlock(nn.Module):
    """Table 5.6a with dense layers: lrelu, Dense; + lrelu(Dense(lrelu(temb))); lrelu, Dense, * gain; + input."""

    def __init__(self, hidden: int, temb_dim: int, sn: bool):
        super().__init__()
        self.fc1 = maybe_spectral_norm(nn.Linear(hidden, hidden), sn)
        self.temb_proj = maybe_spectral_norm(nn.Linear(temb_dim, hidden), sn)
        self.fc2 = maybe_spectral_norm(nn.Linear(hidden, hidden), sn)
        self.gain = nn.Parameter(torch.ones(hidden))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.fc1(lrelu(x)) + lrelu(self.temb_proj(lrelu(temb)))  # (B, hidden)
        return x + self.fc2(lrelu(h)) * self.gain


class EBMMLP(nn.Module):
    """forward(x (B,dim), logsnr (B,), label) -> (B,) f_hat; head = <relu(h), W lrelu(temb)> as in EBMResNet."""

    def __init__(self, dim: int = 2, hidden: int = 128, num_blocks: int = 3, temb_dim: int = 128,
                 spectral_norm: bool = True, num_classes: int = 0, noise_input: str = "logsnr"):
        super().__init__()
        self.temb = NoiseLevelEmbedding(temb_dim // 4, temb_dim, lrelu, num_classes, spectral_norm, noise_input)
        self.stem = maybe_spectral_norm(nn.Linear(dim, hidden), spectral_norm)
        self.blocks = nn.ModuleList(EBMBlock(hidden, temb_dim, spectral_norm) for _ in range(num_blocks))
        self.head = nn.Linear(temb_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.temb(logsnr.expand(x.shape[0]), label)  # (B, temb_dim)
        h = self.stem(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, temb)
        return (F.relu(h) * self.head(lrelu(temb))).sum(dim=1)  # (B,)


class InitBlock(nn.Module):
    """U-Net ResBlock with dense layers: LN, SiLU, Dense; LN * (1 + scale) + shift; SiLU, zero Dense; + input."""

    def __init__(self, hidden: int, temb_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.temb_proj = nn.Linear(temb_dim, 2 * hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.fc2 = zero_init(nn.Linear(hidden, hidden))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.fc1(F.silu(self.norm1(x)))  # (B, hidden)
        scale, shift = self.temb_proj(F.silu(temb)).chunk(2, dim=1)
        return x + self.fc2(F.silu(self.norm2(h) * (1 + scale) + shift))


class InitMLP(nn.Module):
    """forward(x (B,dim), logsnr (B,), label) -> x + net(x), (B,dim); the identity at initialisation."""

    def __init__(self, dim: int = 2, hidden: int = 64, num_blocks: int = 2, temb_dim: int = 128,
                 num_classes: int = 0):
        super().__init__()
        self.temb = NoiseLevelEmbedding(temb_dim // 4, temb_dim, F.silu, num_classes)
        self.stem = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(InitBlock(hidden, temb_dim) for _ in range(num_blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), zero_init(nn.Linear(hidden, dim)))

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.temb(logsnr.expand(x.shape[0]), label)  # (B, temb_dim)
        h = self.stem(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, temb)
        return x + self.out(h)  # (B, dim)
