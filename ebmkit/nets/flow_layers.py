"""Invertible building blocks of the normalizing flows of CoopFlow (thesis ch. 4, sec. 4.5.1).

Shared by FlowPP (Flow++, Ho et al. 2019) and PointFlow: ActNorm (Glow, Kingma & Dhariwal
2018) with data-dependent initialisation, the invertible 1x1 convolution, the checkerboard split and
squeeze reshapes, and the Flow++ coupling's transform: the logistic-mixture CDF, its inverse (Newton steps),
and the coupling map y = (logit F(x) + b) exp(a) on the outputs of any conditioning network.
Every layer maps forward(x) -> (y, logdet (B,)) and inverse(y) -> x.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def standard_normal_logprob(z: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,) log N(z; 0, I), summed over all but the batch dimension."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)


class NormalPriorFlow(nn.Module):
    """A flow x = g(z), z ~ N(0, I) of shape `event_shape`. Subclasses define forward(x) -> (z, logdet)
    with logdet = log|det dz/dx| of shape (B,), and inverse(z) -> x."""

    event_shape: tuple[int, ...]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *event_shape) -> (B,) log density in nats: log N(f(x)) + log|det df/dx|."""
        z, logdet = self(x)
        return standard_normal_logprob(z) + logdet

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """(num, *event_shape) samples x = g(temperature * eps), eps ~ N(0, I) drawn with `generator`."""
        p = next(self.parameters())
        z = torch.randn((num, *self.event_shape), generator=generator, device=p.device, dtype=p.dtype)
        return self.inverse(temperature * z)


class ActNorm(nn.Module):
    """y = (x - loc) * exp(log_scale) per channel (dim 1) of a (B, C, ...) tensor (Glow sec. 3.1).

    The first forward call sets loc and log_scale from its batch so that y has zero mean and unit
    variance per channel (data-dependent initialisation, Salimans & Kingma 2016); afterwards both are
    ordinary parameters. The `initialized` flag is a buffer, so it travels with a checkpoint.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))  # (1, C, 1, ...)

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        xc = x.transpose(0, 1).flatten(1)  # (C, B * spatial)
        self.loc.copy_(xc.mean(1))
        self.log_scale.copy_(-torch.log(xc.std(1, unbiased=False) + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.initialized:
            self._initialize(x)
        y = (x - self._view(self.loc, x)) * self._view(self.log_scale, x).exp()
        logdet = self.log_scale.sum() * x[0, 0].numel()  # each channel scales prod(spatial) entries
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._view(-self.log_scale, y).exp() + self._view(self.loc, y)


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution y = W x at every pixel (Glow sec. 3.2), W initialised to a random
    rotation; log|det| = H W log|det W| by slogdet, the inverse by a float64 matrix inverse."""

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(q)  # (C, C)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.einsum("ij,bjhw->bihw", self.weight, x)  # (B, C, H, W)
        logdet = torch.linalg.slogdet(self.weight)[1] * x[0, 0].numel()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight.double()).to(self.weight.dtype)
        return torch.einsum("ij,bjhw->bihw", w_inv, y)


# ---- volume-preserving reshapes ------------------------------------------------------------------

def _checker_flip(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W/2, 2): swap the two pixels of each horizontal pair on odd rows (an involution)."""
    odd_row = (torch.arange(x.shape[2], device=x.device) % 2 == 1).view(-1, 1, 1)  # (H, 1, 1)
    return torch.where(odd_row, x.flip(-1), x)


def checkerboard_split(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2C, H, W/2): channels [:C] hold the pixels with (i + j) even, [C:] the odd."""
    pairs = _checker_flip(x.unflatten(3, (-1, 2)))  # (B, C, H, W/2, 2)
    return torch.cat(pairs.unbind(-1), dim=1)


def checkerboard_merge(h: torch.Tensor) -> torch.Tensor:
    """Inverse of checkerboard_split: (B, 2C, H, W/2) -> (B, C, H, W)."""
    pairs = torch.stack(h.chunk(2, dim=1), dim=-1)  # (B, C, H, W/2, 2)
    return _checker_flip(pairs).flatten(3)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """Space to depth: (B, C, H, W) -> (B, 4C, H/2, W/2), channel index c * 4 + 2 * dy + dx."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Depth to space, the inverse of squeeze: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, H, 2, W, 2)
    return x.reshape(b, c // 4, 2 * h, 2 * w)


# ---- logistic-mixture CDF (Flow++ sec. 3.2) ------------------------------------------------------

def mixture_logit_cdf(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                      log_scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y = logit F(x) for the K-component logistic mixture F, and log dy/dx, both shaped like x.

    x: (B, C, H, W); logits, means, log_scales: (B, K, C, H, W). Computed from log F and log(1 - F)
    so that neither saturates: y = log F - log(1 - F), dy/dx = f / (F (1 - F)).
    """
    log_w = F.log_softmax(logits, dim=1)
    z = (x.unsqueeze(1) - means) * torch.exp(-log_scales)  # (B, K, C, H, W)
    log_cdf = torch.logsumexp(log_w + F.logsigmoid(z), dim=1)
    log_sf = torch.logsumexp(log_w + F.logsigmoid(-z), dim=1)
    log_pdf = torch.logsumexp(log_w + F.logsigmoid(z) + F.logsigmoid(-z) - log_scales, dim=1)
    return log_cdf - log_sf, log_pdf - log_cdf - log_sf


def mixture_logit_cdf_inverse(y: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                              log_scales: torch.Tensor, max_iters: int = 100) -> torch.Tensor:
    """x with logit F(x) = y, by safeguarded Newton steps, then an implicit-function gradient.

    logit F(x) lies between the component logits min_k and max_k of (x - mu_k) / s_k, so the root is
    bracketed by min_k and max_k of mu_k + s_k y. Each step narrows every bracket by the sign of
    logit F(x) - y and takes the Newton step where it lands inside the bracket, the bracket's midpoint
    where it does not (logit F is increasing, so this converges always, and quadratically near the root:
    about 6-10 steps where bisection needs 27 in float32, 55 in float64). It stops when no point moves
    by more than a few ulps, after at most `max_iters` steps. The result carries the gradient of the
    implicit function dx = (dy - d_theta logit F) / (d logit F / dx), its value untouched.
    """
    track_grad = torch.is_grad_enabled()
    with torch.no_grad():
        roots = means + log_scales.exp() * y.unsqueeze(1)  # (B, K, C, H, W)
        lo, hi = roots.amin(dim=1), roots.amax(dim=1)
        x = 0.5 * (lo + hi)
        ulp = 4 * torch.finfo(x.dtype).eps
        for _ in range(max_iters):
            value, log_slope = mixture_logit_cdf(x, logits, means, log_scales)
            gap = value - y
            lo, hi = torch.where(gap < 0, x, lo), torch.where(gap > 0, x, hi)
            newton = x - gap * torch.exp(-log_slope)
            x_next = torch.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
            done = ((x_next - x).abs() <= ulp * (1 + x.abs())).all()
            x = torch.where(gap == 0, x, x_next)
            if done:
                break
        if not track_grad:
            return x
        slope = mixture_logit_cdf(x, logits, means, log_scales)[1].exp()
    step = (y - mixture_logit_cdf(x, logits, means, log_scales)[0]) / slope
    return x + (step - step.detach())


# ---- the Flow++ coupling transform (sec. 3.2), shared by the image and the point couplings ---------------

def mixture_coupling_params(h: torch.Tensor, k: int, rescale: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A conditioning network's output h (B, 2 + 3K, ...) -> (a, b, logits, means, log_scales): a = rescale *
    tanh(.) the bounded log-scale and b the shift, shaped (B, ...); the K components' terms (B, K, ...), the
    log-scales floored at -7."""
    a, b, logits, means, log_scales = h.split((1, 1, k, k, k), dim=1)
    return rescale * torch.tanh(a.squeeze(1)), b.squeeze(1), logits, means, log_scales.clamp(min=-7.0)


def mixture_coupling(x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """y = (logit F(x) + b) * exp(a) and log dy/dx, both shaped like x."""
    a, b, logits, means, log_scales = params
    y, log_dy = mixture_logit_cdf(x, logits, means, log_scales)
    return (y + b) * a.exp(), log_dy + a


def mixture_coupling_inverse(y: torch.Tensor, params: tuple[torch.Tensor, ...], cdf_clamp: float = 0.0) -> torch.Tensor:
    """x with mixture_coupling(x, params)[0] = y. cdf_clamp > 0 first clamps the target CDF value to
    [cdf_clamp, 1 - cdf_clamp] (the authors' CoopFlow code, 1e-5), so the inverse is no longer exact beyond it."""
    a, b, logits, means, log_scales = params
    target = y * (-a).exp() - b  # logit F(x)
    if cdf_clamp > 0:
        limit = math.log((1 - cdf_clamp) / cdf_clamp)
        target = target.clamp(-limit, limit)
    return mixture_logit_cdf_inverse(target, logits, means, log_scales)
