"""The inference networks of NeRF-LEBM's amortized learning (sec. 3.5.2.3, 3.4.4): a ResNet34 feature
extractor (torchvision, random initialisation: nothing is downloaded) shared by small MLP heads.

Encoder: images (B, 3, H, W) in [0, 1] -> features (B, 512) and, for unknown poses, von Mises-Fisher
posteriors on the circle for elevation and azimuth: mean directions normalize(linear) (B, 2, 2) as
(cos, sin) and concentrations softplus + 1 (B, 2) (implementation notes); with `ends`, a flip head whose
logit (B,) says the view shows the other end, and the prior log-odds of that end, a buffer `end_bias` that
NeRFLEBM.choose_ends adjusts (it is saved with the model and resumes with it). The feature extractor and
the pose heads share one learning rate (sec. 3.5.2.3).
GaussianHeads: features -> the means and log standard deviations of q(z_s | I) and q(z_a | I), trained
at their own, smaller rate.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet34

FEATURES = 512


def mlp_head(out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(FEATURES, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out))


class GaussianHeads(nn.Module):
    """q(z_s | I) and q(z_a | I) = N(mu, diag(sigma^2)): (B, 512) -> mu_s, log_sigma_s, mu_a, log_sigma_a (B, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.shape, self.app = mlp_head(2 * dim), mlp_head(2 * dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (*self.shape(h).chunk(2, -1), *self.app(h).chunk(2, -1))


class Encoder(nn.Module):
    """ResNet34 features, plus the vMF pose head when `poses` (unknown camera poses, sec. 3.4.4)."""

    def __init__(self, poses: bool = False, ends: bool = False):
        super().__init__()
        self.features = resnet34(weights=None)
        self.features.fc = nn.Identity()
        self.pose = mlp_head(2 * 3) if poses else None
        self.flip = mlp_head(1) if ends else None
        if ends:
            self.register_buffer("end_bias", torch.zeros(()))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> features (B, 512), vMF mean directions (B, 2, 2) and concentrations (B, 2) (None, None without
        poses), and the flip head's logits (B,) (None without `ends`)."""
        h = self.features(2 * images - 1)
        if self.pose is None:
            return h, None, None, None
        out = self.pose(h).view(-1, 2, 3)
        flip = None if self.flip is None else self.flip(h)[:, 0]
        return h, F.normalize(out[..., :2], dim=-1), F.softplus(out[..., 2]) + 1, flip
