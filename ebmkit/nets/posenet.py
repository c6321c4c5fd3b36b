"""The inference networks of the authors' unknown-pose code (AlvinZhuyx/NeRF-LEBM, Carla_amortized_without_pose):
inference.heads = "posenet", the layout their checkpoints convert to. Same contract as nerf_encoder's Encoder and
GaussianHeads, which NeRFLEBM reads; they differ from those in:

- features: the ResNet34's 1000-way classifier output (their pose_inference keeps torchvision's fc);
- pose head: one linear layer (1000 -> 2 x 3): per angle (elevation, azimuth) a mean direction normalize(.) as
  (cos, sin) and a concentration softplus(.) + KAPPA_FLOOR (their elevation's softplus has no floor, their
  azimuth's adds 1);
- latent heads: Linear(1000, 256), ReLU, one linear layer to the means and log standard deviations of
  q(z_s | I) and q(z_a | I).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ebmkit.nets.nerf_encoder import Encoder

KAPPA_FLOOR = (0.0, 1.0)  # (elevation, azimuth)


class PoseNetEncoder(Encoder):
    """images (B, 3, H, W) in [0, 1] -> features (B, 1000), vMF mean directions (B, 2, 2) as (cos, sin) and
    concentrations (B, 2), both for (elevation, azimuth), and no flip head (None). width, imagenet: Encoder's."""

    def __init__(self, width: int = 64, imagenet: bool = False):
        super().__init__(poses=True, width=width, classifier=True, imagenet=imagenet)
        self.pose = nn.Linear(self.dim, 2 * 3)
        self.register_buffer("kappa_floor", torch.tensor(KAPPA_FLOOR), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        h = self.features(self.normalise(images))
        out = self.pose(h).view(-1, 2, 3)
        return h, F.normalize(out[..., :2], dim=-1), F.softplus(out[..., 2]) + self.kappa_floor, None


class PoseNetHeads(nn.Module):
    """q(z_s | I), q(z_a | I) = N(mu, diag(sigma^2)): (B, F) -> mu_s, log_sigma_s, mu_a, log_sigma_a (B, dim)."""

    def __init__(self, dim: int, features: int, hidden: int = 256):
        super().__init__()
        self.mapping = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, 4 * dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.out(F.relu(self.mapping(h))).chunk(4, -1)
