"""Noise-level and class embeddings shared by all networks (thesis Table 5.6c and sec. 5.4.8.1).

The noise level enters every network as its log-SNR lambda. It is squashed to u in (0, 1), embedded
sinusoidally at position 1000 * u, and passed through Dense -> act -> Dense. A class label, when the
network is class-conditional, is one-hot encoded and mapped by a Linear layer onto the same space
and added (label 0 is the null class of classifier-free guidance, user class c is c + 1).
"""

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv/linear layer in spectral normalisation when `enabled`."""
    return _spectral_norm(module) if enabled else module


def logsnr_to_unit(logsnr: torch.Tensor) -> torch.Tensor:
    """(B,) log-SNR -> (B,) u = arctan(exp(-lambda/2)) / (pi/2) in (0, 1); u(0) = 0.5, u -> 0 when clean."""
    return torch.atan(torch.exp(-0.5 * logsnr.clamp(-20.0, 20.0))) / (0.5 * math.pi)


def sinusoidal_embedding(u: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """(B,) -> (B, dim): [sin(p w_i), cos(p w_i)] at position p = scale * u, w_i = 10000^(-i / (half - 1)).

    An odd `dim` gets one zero channel at the end. Computed in u's dtype.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=u.dtype, device=u.device) / (half - 1))
    args = scale * u[:, None] * freqs[None, :]  # (B, half)
    return F.pad(torch.cat([args.sin(), args.cos()], dim=1), (0, dim % 2))


class NoiseLevelEmbedding(nn.Module):
    """Table 5.6c: sinusoidal(u(lambda)) -> Dense -> act -> Dense, plus Linear(one-hot(label)) (sec. 5.4.8.1).
    With position "index" the input is the level index t itself, embedded at position t (DRL's timestep
    embedding, the conditioning input Table 5.9's DRL row differs by)."""

    def __init__(self, base_dim: int, temb_dim: int, act: Callable[[torch.Tensor], torch.Tensor],
                 num_classes: int = 0, spectral_norm: bool = False, position: str = "logsnr"):
        super().__init__()
        self.base_dim, self.num_classes, self.act, self.position = base_dim, num_classes, act, position
        self.dense1 = maybe_spectral_norm(nn.Linear(base_dim, temb_dim), spectral_norm)
        self.dense2 = maybe_spectral_norm(nn.Linear(temb_dim, temb_dim), spectral_norm)
        self.label_proj = (maybe_spectral_norm(nn.Linear(num_classes + 1, temb_dim), spectral_norm)
                           if num_classes > 0 else None)

    def forward(self, logsnr: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """logsnr (B,): the log-SNR lambda, or with position "index" the level t."""
        if self.num_classes > 0 and label is None:
            raise ValueError(f"class-conditional network (num_classes={self.num_classes}) needs `label` "
                             f"(B,) with values in 0..{self.num_classes}, 0 being the null class")
        if self.num_classes == 0 and label is not None:
            raise ValueError("unconditional network (num_classes=0) takes no `label`")
        if self.position == "index":
            emb = sinusoidal_embedding(logsnr, self.base_dim, scale=1.0)
        else:
            emb = sinusoidal_embedding(logsnr_to_unit(logsnr), self.base_dim)
        emb = emb.to(self.dense2.bias.dtype)  # (B, base)
        temb = self.dense2(self.act(self.dense1(emb)))  # (B, temb_dim)
        if label is not None:
            temb = temb + self.label_proj(F.one_hot(label, self.num_classes + 1).to(temb.dtype))
        return temb
