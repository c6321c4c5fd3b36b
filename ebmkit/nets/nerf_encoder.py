"""The inference networks of NeRF-LEBM's amortized learning (sec. 3.5.2.3, 3.4.4): a ResNet34 feature
extractor (torchvision, random initialisation: nothing is downloaded) shared by small heads.

Encoder: images (B, 3, H, W) in [0, 1] -> features (B, F) and, for unknown poses, von Mises-Fisher
posteriors on the circle for elevation and azimuth: mean directions normalize(linear) (B, 2, 2) as
(cos, sin) and concentrations softplus + 1 (B, 2) (implementation notes); with `ends`, a flip head whose
logit (B,) says the view shows the other end, and the prior log-odds of that end, a buffer `end_bias` that
NeRFLEBM.choose_ends adjusts (it is saved with the model and resumes with it). The feature extractor and
the pose heads share one learning rate (sec. 3.5.2.3). The features are the ResNet's pooled 8 x width (512)
channels, or with `classifier` its 1000-way classifier's output (the authors' code); the ResNet reads 2 I - 1,
or with `imagenet` I normalised by ImageNet's channel means and deviations (the authors' code).
GaussianHeads: features -> the means and log standard deviations of q(z_s | I) and q(z_a | I), trained
at their own, smaller rate; LinearGaussianHeads: the authors' layout, one Linear each for the means and
the log-variances.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = 1000  # the ImageNet classifier's outputs, which the authors' heads read
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resnet34(width: int = 64, classes: int | None = None) -> nn.Module:
    """torchvision's ResNet34 with stages of width x (1, 2, 4, 8) channels (64: ResNet34 itself), initialised as
    torchvision does; its classifier has `classes` outputs, or is removed (None: the pooled 8 x width features).
    torchvision is imported here, not with the module: it costs every command a second of start-up."""
    from torchvision.models import resnet

    net = resnet.resnet34(weights=None)
    if width != 64:  # the same blocks, narrower
        net.inplanes = width
        net.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        for i, (blocks, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2))):
            setattr(net, f"layer{i + 1}", net._make_layer(resnet.BasicBlock, width * 2 ** i, blocks, stride))
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Linear(8 * width, classes) if classes else nn.Identity()
    return net


def mlp_head(features: int, out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out))


class GaussianHeads(nn.Module):
    """q(z_s | I) and q(z_a | I) = N(mu, diag(sigma^2)): (B, F) -> mu_s, log_sigma_s, mu_a, log_sigma_a (B, dim)."""

    def __init__(self, dim: int, features: int):
        super().__init__()
        self.shape, self.app = mlp_head(features, 2 * dim), mlp_head(features, 2 * dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (*self.shape(h).chunk(2, -1), *self.app(h).chunk(2, -1))


class LinearGaussianHeads(nn.Module):
    """GaussianHeads as the authors' code builds them: a Linear each for mu and log sigma^2 (log sigma = half)."""

    def __init__(self, dim: int, features: int):
        super().__init__()
        self.shape_mean, self.shape_logvar = nn.Linear(features, dim), nn.Linear(features, dim)
        self.app_mean, self.app_logvar = nn.Linear(features, dim), nn.Linear(features, dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.shape_mean(h), 0.5 * self.shape_logvar(h), self.app_mean(h), 0.5 * self.app_logvar(h)


class Encoder(nn.Module):
    """ResNet34 features, plus the vMF pose head when `poses` (unknown camera poses, sec. 3.4.4); `width`,
    `classifier` and `imagenet` as in the module docstring. `dim`: the number of features."""

    def __init__(self, poses: bool = False, ends: bool = False, width: int = 64, classifier: bool = False,
                 imagenet: bool = False):
        super().__init__()
        self.features = resnet34(width, CLASSES if classifier else None)
        self.dim = CLASSES if classifier else 8 * width
        self.imagenet = imagenet
        self.pose = mlp_head(self.dim, 2 * 3) if poses else None
        self.flip = mlp_head(self.dim, 1) if ends else None
        if ends:
            self.register_buffer("end_bias", torch.zeros(()))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> features (B, F), vMF mean directions (B, 2, 2) and concentrations (B, 2) (None, None without
        poses), and the flip head's logits (B,) (None without `ends`)."""
        h = self.features(self.normalise(images))
        if self.pose is None:
            return h, None, None, None
        out = self.pose(h).view(-1, 2, 3)
        flip = None if self.flip is None else self.flip(h)[:, 0]
        return h, F.normalize(out[..., :2], dim=-1), F.softplus(out[..., 2]) + 1, flip

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] as the ResNet reads them."""
        if not self.imagenet:
            return 2 * images - 1
        mean, std = (images.new_tensor(v)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
        return (images - mean) / std
