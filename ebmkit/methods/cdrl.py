"""CDRL: cooperative diffusion recovery likelihood (thesis ch. 5, Algorithms 4 and 5).

At each of T noise levels an initializer g_phi proposes y_t from x_{t+1} (Eq. 5.4), K Langevin
steps on the conditional EBM p(y_t | x_{t+1}) refine it (Eq. 5.3), the EBM learns from the refined
samples (Eq. 5.5) and the initializer regresses on them (Eq. 5.6). Sampling runs the levels from
white noise down and ends with a Tweedie denoising step (Eq. 5.16).

The energy is parameterised as f = f_hat / s_t^2 with f_hat the network output and s_t the Langevin
step size (sec. 5.4.8.2), so the drift of Eq. 5.3 is grad(f_hat) / 2. Labels given to the networks
are shifted by one: 0 is the null class of classifier-free guidance (sec. 5.3.5).
"""

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ebmkit import viz
from ebmkit.data import Dataset
from ebmkit.data.masks import keep_observed
from ebmkit.errors import EbmkitError
from ebmkit.langevin import langevin
from ebmkit.methods.base import Batch, Method, OptimSpec
from ebmkit.nets import EBMMLP, EBMResNet, InitMLP, UNet
from ebmkit.schedules import DiffusionLevels, cdrl_levels


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast against a batch shaped like `like`."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class Guide:
    """Classifier-free guidance and composition of concepts (Eq. 5.9 - 5.12) for a network that takes a
    label (0 = null): with M concept labels c_i and weight w,

        out = (w + 1) sum_i net(.; c_i) - (M (w + 1) - 1) net(.; null)

    M = 1 is Eq. 5.9 (and, for the initializer mean, Eq. 5.10); M > 1 is Eq. 5.12 (5.11 at w = 0);
    M = 0 is the unconditional network. All M + 1 evaluations run as one batch.
    """

    def __init__(self, labels: list[torch.Tensor], weight: float, num: int, device):
        self.labels = [c.to(device) for c in labels]
        self.weight = weight
        self.null = torch.zeros(num, dtype=torch.long, device=device)

    def combine(self, net: nn.Module, x: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        m, w = len(self.labels), self.weight
        if m == 0:
            return net(x, logsnr, self.null)
        reps = m + 1
        out = net(torch.cat([x] * reps), logsnr.repeat(reps),  # cat keeps x's memory format
                  torch.cat([*self.labels, self.null])).chunk(reps)
        return (w + 1) * sum(out[:m]) - (m * (w + 1) - 1) * out[m]


class CDRL(Method):
    name = "cdrl"

    def __init__(self, preset, shape, device="cpu"):
        super().__init__(preset, shape, device)
        d = preset.diffusion
        s = preset.sampler
        self.levels: DiffusionLevels = cdrl_levels(d.num_levels, d.logsnr_max, d.logsnr_min, s.step_coef,
                                                   s.step_rule, d.schedule, d.drl_spacing).to(self.device)

    # ------------------------------------------------------------------------------ networks
    def build_networks(self) -> dict[str, nn.Module]:
        p, shape = self.preset, self.shape
        num_labels = p.conditioning.num_labels
        init_labels = num_labels if p.conditioning.init_takes_labels else 0
        e, i = p.ebm, p.init
        if e.arch == "resnet":
            ebm = EBMResNet(shape[0], e.channels, e.num_res_blocks, e.temb_dim, e.spectral_norm, num_labels, e.noise_input)
        else:
            ebm = EBMMLP(shape[0], e.hidden, e.num_blocks, e.temb_dim, e.spectral_norm, num_labels, e.noise_input)
        if i.arch == "unet":
            init = UNet(shape[0], shape[-1], i.base_channels, i.channel_mult, i.num_res_blocks,
                        i.attn_resolutions, i.dropout, i.temb_dim, i.num_heads, num_classes=init_labels,
                        resample=i.resample, norm_eps=i.norm_eps)
        elif i.arch == "mlp":
            init = InitMLP(shape[0], i.hidden, i.num_blocks, i.temb_dim, init_labels)
        else:  # DRL: no initializer
            return {"ebm": ebm}
        return {"ebm": ebm, "init": init}

    def optim_specs(self) -> dict[str, OptimSpec]:
        t = self.preset.train  # sec. 5.4.8.2 and Eq. 5.13; AdamW with weight decay 0 for the initializer
        specs = {"ebm": OptimSpec(t.lr, t.betas, t.weight_decay, t.warmup, 0, t.grad_clip)}
        if "init" in self.nets:
            specs["init"] = OptimSpec(t.init_lr, t.betas, t.weight_decay, t.warmup, t.init_warmup_lead, t.grad_clip,
                                      decoupled=True)
        return specs

    # ------------------------------------------------------------------------------ pieces
    def _labels(self, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Shifted training labels for the EBM and the initializer, with null-class dropout."""
        cond = self.preset.conditioning
        if cond.kind == "none":
            return None, None
        if cond.kind == "class":
            label = batch.labels + 1
        else:  # each image speaks for one of its attributes, chosen at random (sec. 5.4.6)
            if cond.attribute_weights:  # harder attributes can be shown more often
                p = torch.tensor(cond.attribute_weights, device=self.device)
                which = torch.multinomial(p / p.sum(), len(batch.x), replacement=True)
            else:
                which = torch.randint(0, batch.attributes.shape[1], (len(batch.x),), device=self.device)
            value = batch.attributes[torch.arange(len(batch.x), device=self.device), which].long()
            offsets = torch.tensor([g.start for g in cond.label_groups()], device=self.device)
            label = offsets[which] + value
        drop = torch.rand(len(label), device=self.device) < cond.label_dropout
        label = torch.where(drop, torch.zeros_like(label), label)
        return label, label if cond.init_takes_labels else None

    def ebm_noise(self, t: torch.Tensor) -> torch.Tensor:
        """What the EBM is told of level t (B,): lambda_t, or t itself (ebm.noise_input "index", DRL)."""
        return t.to(self.levels.logsnr.dtype) if self.preset.ebm.noise_input == "index" else self.levels.logsnr[t]

    def refine(self, ebm: nn.Module, y0: torch.Tensor, x_next: torch.Tensor, t: torch.Tensor,
               label: torch.Tensor | None, steps: int, step_scale: float = 1.0,
               generator: torch.Generator | None = None, guide: "Guide | None" = None,
               observed: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """K Langevin steps on p(y_t | x_{t+1}) of Eq. 5.1, i.e. Eq. 5.3, from y0. t: (B,) levels.
        With `guide` the energy is the guided one of Eq. 5.9 / 5.12; `observed` = (y_obs, mask) resets
        the observed pixels after each step (inpainting)."""
        lv = self.levels
        s2, logsnr = lv.step_size[t] ** 2, self.ebm_noise(t)

        def log_density(y):  # f = f_hat / s_t^2 (sec. 5.4.8.2)
            f_hat = ebm(y, logsnr, label) if guide is None else guide.combine(ebm, y, logsnr)
            return f_hat / s2

        return langevin(log_density, y0, step_size=lv.step_size[t] * step_scale, steps=steps,
                        noise_weight=self.preset.sampler.noise_weight, anchor=x_next,
                        anchor_precision=lv.recovery[t] / lv.sigma[t] ** 2, generator=generator,
                        observed=observed, project=self.envelope(t), autocast=self.autocast).x

    def envelope(self, t: torch.Tensor):
        """With sampler.envelope = k, a projection keeping y_t within y_scale_t (abar_t + k sbar_t) per
        sample: chains that leave the region where noised data lives cannot drag the EBM after them."""
        k = self.preset.sampler.envelope
        if k is None:
            return None
        lv = self.levels
        bound = lv.y_scale[t] * (lv.alpha_bar[t] + k * lv.sigma_bar[t])  # (B,)
        return lambda y, step: y.clamp(-per_sample(bound, y), per_sample(bound, y))

    def propose(self, init: nn.Module | None, x_next: torch.Tensor, t: torch.Tensor, label: torch.Tensor | None,
                generator: torch.Generator | None = None, guide: "Guide | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5.4: mean g_phi(x_{t+1}; t) and a draw of N(g, sigma-tilde_t^2 I) in y-space; with a
        conditional initializer and `guide`, the guided mean of Eq. 5.10; with M > 1 attribute labels the
        same combination of means, which is the mean of the Gaussian product of experts in the manner of
        Eq. 5.12 (its coefficients sum to 1). Without an initializer (DRL) the chain starts at x_{t+1} itself."""
        if init is None:
            return x_next, x_next
        logsnr = self.levels.logsnr[t + 1]
        if guide is not None and self.preset.conditioning.init_takes_labels:
            g = guide.combine(init, x_next, logsnr)  # affine in the output, so guiding commutes with init_mean
        else:
            g = init(x_next, logsnr, label)
        g = self.init_mean(g, x_next, t)
        if not self.preset.sampler.init_noise:
            return g, g.detach()
        noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        return g, g.detach() + per_sample(self.levels.init_std[t], g) * noise

    def init_mean(self, out: torch.Tensor, x_next: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The initializer's output as the mean y-hat_t of Eq. 5.4 (init.predicts): itself, or from a predicted
        x_0 (or the total noise eps of x_{t+1} = abar_{t+1} x_0 + sbar_{t+1} eps) through the posterior mean
        E[x_t | x_0, x_{t+1}] = abar_t sigma_{t+1}^2 / sbar_{t+1}^2 x_0 + alpha_{t+1} sbar_t^2 / sbar_{t+1}^2 x_{t+1},
        times y_scale_t (sec. 5.4.11, items 4 and 5)."""
        predicts = self.preset.init.predicts
        if predicts == "y":
            return out
        lv, b = self.levels, per_sample
        x0 = out if predicts == "x0" else (x_next - b(lv.sigma_bar[t + 1], out) * out) / b(lv.alpha_bar[t + 1], out)
        c0 = lv.alpha_bar[t] * lv.sigma[t] ** 2 / lv.sigma_bar[t + 1] ** 2
        c1 = lv.alpha[t] * lv.sigma_bar[t] ** 2 / lv.sigma_bar[t + 1] ** 2
        return b(lv.y_scale[t], out) * (b(c0, out) * x0 + b(c1, out) * x_next)

    # ------------------------------------------------------------------------------ Algorithm 4
    def train_step(self, batch: Batch, nets: dict[str, nn.Module], step: int = 0) -> tuple[dict, dict]:
        lv, x0 = self.levels, batch.x.contiguous(memory_format=self.memory_format)
        b = per_sample  # shorthand for broadcasting per-example coefficients
        t = torch.randint(0, lv.num_levels, (len(x0),), device=self.device)  # a level per example
        label, init_label = self._labels(batch)

        e = torch.randn_like(x0)
        x_t = b(lv.alpha_bar[t], x0) * x0 + b(lv.sigma_bar[t], x0) * e
        if self.preset.diffusion.variance_reduction:  # Eq. 5.7: the pair shares its white noise
            x_next = b(lv.alpha_bar[t + 1], x0) * x0 + b(lv.sigma_bar[t + 1], x0) * e
        else:
            x_next = b(lv.alpha[t], x0) * x_t + b(lv.sigma[t], x0) * torch.randn_like(x0)
        y = b(lv.y_scale[t], x0) * x_t  # y_t = alpha_{t+1} x_t; x_{T-1} itself at the top level

        g, y_hat = self.propose(nets["init"] if "init" in nets else None, x_next, t, init_label)  # Eq. 5.4
        self.nets["ebm"].eval()  # no spectral-norm power iterations while sampling
        y_tilde = self.refine(self.nets["ebm"], y_hat, x_next, t, label, self.preset.sampler.steps)  # Eq. 5.3
        self.nets["ebm"].train()

        # Eq. 5.5 as a loss on f_hat, levels weighted by sigma_1 / sigma_{t+1} (implementation notes),
        # with the classifier term's inputs in the same network call (one forward per backward under DDP).
        ys, logsnrs, labels = [y, y_tilde], [self.ebm_noise(t)] * 2, [label] * 2
        use_cls = label is not None and self.preset.conditioning.classifier_loss > 0
        if use_cls:
            keep, cand, valid, truth = self.label_candidates(label)
            ys.append(y[keep].repeat_interleave(cand.shape[1], 0))
            logsnrs.append(self.ebm_noise(t)[keep].repeat_interleave(cand.shape[1]))
            labels.append(cand.flatten())
        out = nets["ebm"](torch.cat(ys), torch.cat(logsnrs), None if label is None else torch.cat(labels))
        f_data, f_sample = out[:len(y)], out[len(y):2 * len(y)]
        loss_ebm = (lv.loss_weight[t] * (f_sample - f_data)).mean()
        metrics = {"energy_data": -f_data.detach().mean(), "energy_sample": -f_sample.detach().mean()}
        if use_cls:
            logits = out[2 * len(y):].view(len(cand), -1).masked_fill(~valid, float("-inf"))
            label_ce = F.cross_entropy(logits, truth)
            loss_ebm = loss_ebm + self.preset.conditioning.classifier_loss * label_ce
            metrics["label_ce"] = label_ce.detach()
        if "init" not in nets:
            return {"ebm": loss_ebm}, metrics
        # Eq. 5.6 without the 1 / (2 sigma-tilde_t^2) factor (the "simple" loss).
        target = {"revised": y_tilde, "displacement": y_tilde - (y_hat - g.detach()), "data": y}[self.preset.train.init_target]
        loss_init = (target - g).pow(2).flatten(1).sum(1).mean()
        return {"ebm": loss_ebm, "init": loss_init}, metrics

    def label_candidates(self, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Our addition to Eq. 5.5 (conditioning.classifier_loss, why: docs/results/cdrl.md): the EBM read as
        a classifier over the values of the attribute each image is labelled by (all classes for class models).

        label (B,) -> keep (B,) bool (null-labelled images sit out), candidate labels (n, W), valid (n, W)
        (attributes with fewer than W values are padded), truth (n,) index of the true label."""
        groups = self.preset.conditioning.label_groups()
        first = torch.tensor([g.start for g in groups], device=self.device)  # (G,) first label of each group
        size = torch.tensor([len(g) for g in groups], device=self.device)  # (G,) its number of values
        keep = label > 0
        group = (label[keep, None] >= first[None]).sum(1) - 1  # (n,) attribute of each label
        offset = torch.arange(int(size.max()), device=self.device)[None]  # (1, W)
        valid = offset < size[group][:, None]
        cand = first[group][:, None] + torch.where(valid, offset, 0)
        return keep, cand, valid, label[keep] - first[group]

    # ------------------------------------------------------------------------------ Algorithm 5
    @torch.no_grad()
    def sample_levels(self, num: int, generator: torch.Generator | None = None, steps: int | None = None,
                      use_ema: bool = True, labels: list[torch.Tensor] | None = None, guidance: float = 0.0,
                      observed: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[torch.Tensor]:
        """x_{T-1}, ..., x_0 for one batch of `num` samples, then the Tweedie-denoised x_0 (Eq. 5.16).

        `steps` below the trained K scales the step size by sqrt(K / steps) (sec. 5.4.2); 0 samples
        with the initializer alone. `labels`: M tensors (num,) of network labels (`class_labels`,
        `attribute_labels`), combined with guidance weight w by Eq. 5.9 (M = 1) or 5.12 (M > 1); None
        samples unconditionally. `observed` = (x, mask) inpaints (sec. 5.4.7): where mask is 1 the
        sample is reset to x noised to the current level after every proposal and Langevin step.
        """
        nets = self.ema if use_ema else self.nets
        was_training = nets.training
        nets.eval()
        K = self.preset.sampler.steps
        steps = K if steps is None else steps
        scale = math.sqrt(K / steps) if 0 < steps < K else 1.0             # sec. 5.4.2
        conditional = self.preset.conditioning.kind != "none"
        labels = labels or []
        level_step = functools.partial(self._level, nets=nets, steps=steps, scale=scale, generator=generator,
                                       guidance=guidance if conditional else None)

        x = torch.randn((num, *self.shape), generator=generator, device=self.device)  # x_T ~ N(0, I)
        x = x.contiguous(memory_format=self.memory_format)
        if observed is not None:
            x = keep_observed(self._observation(observed, self.num_levels, x), observed[1], x)
        out = []
        for t in reversed(range(self.num_levels)):                             # t = T-1, ..., 0
            if observed is not None:  # the observation at level t, in y-space, reset after every update
                y_obs = self._observation(observed, t, torch.randn(x.shape, generator=generator, device=self.device))
                x = level_step(x, *labels, level=t, y_observed=(self.levels.y_scale[t] * y_obs, observed[1]))
            else:
                key = (t, num, steps, scale, guidance, len(labels), use_ema, id(generator))
                x = self._replayed(functools.partial(level_step, level=t), (x, *labels), generator, key)
            out.append(x)
        guide = Guide(labels, guidance, num, self.device) if conditional else None
        x0 = self.tweedie(nets["ebm"], x, guide)                                # Eq. 5.16
        out.append(x0 if observed is None else keep_observed(observed[0], observed[1], x0))
        nets.train(was_training)
        return out

    def _level(self, x: torch.Tensor, *labels: torch.Tensor, nets, level: int, steps: int, scale: float,
               generator, guidance: float | None, y_observed=None) -> torch.Tensor:
        """x_{t+1} -> x_t at level t, one iteration of Algorithm 5: the initializer's proposal y_t (Eq. 5.4),
        `steps` Langevin steps on p(y_t | x_{t+1}) (Eq. 5.3), then x_t = y_t / alpha_{t+1}. Guided by `labels`
        with weight `guidance` (None: the model is unconditional). Reads every per-batch tensor from its
        arguments, so it can be captured in a CUDA graph."""
        t = torch.full((len(x),), level, device=self.device)
        guide = None if guidance is None else Guide(list(labels), guidance, len(x), self.device)
        _, y = self.propose(nets["init"] if "init" in nets else None, x, t, None, generator, guide)  # Eq. 5.4
        if y_observed is not None:
            y = keep_observed(*y_observed, y)
        if steps > 0:
            y = self.refine(nets["ebm"], y, x, t, None, steps, scale, generator, guide, y_observed)  # Eq. 5.3
        return y / self.levels.y_scale[level]

    def _observation(self, observed: tuple[torch.Tensor, torch.Tensor], level: int, noise: torch.Tensor) -> torch.Tensor:
        """Inpainting (sec. 5.4.7): the observed image noised to level `level`, abar x + sbar noise."""
        return self.levels.alpha_bar[level] * observed[0] + self.levels.sigma_bar[level] * noise

    def _replayed(self, fn, inputs: tuple[torch.Tensor, ...], generator, key: tuple) -> torch.Tensor:
        """fn(*inputs); on CUDA a graph captured once per key (level, batch shape, settings), then replayed."""
        if self.graphs is None:
            return fn(*inputs)
        return self.graphs.run(key, fn, inputs, generator)

    def tweedie(self, ebm: nn.Module, x: torch.Tensor, guide: "Guide | None" = None) -> torch.Tensor:
        """Eq. 5.16 at level 0 with the score multiplied by tweedie_coef (2.0 in the thesis), guided
        like the Langevin steps (implementation notes). Always in full precision: the score is scaled by
        sigma_bar_0^2 / s_0^2, which would magnify bf16 rounding."""
        lv, coef = self.levels, self.preset.sampler.tweedie_coef
        if coef == 0:
            return x
        t = torch.zeros(len(x), dtype=torch.long, device=self.device)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y, logsnr = lv.y_scale[0] * x, self.ebm_noise(t)
            f_hat = ebm(y, logsnr) if guide is None else guide.combine(ebm, y, logsnr)
            (score,) = torch.autograd.grad((f_hat / lv.step_size[0] ** 2).sum(), x)
        return (x.detach() + lv.sigma_bar[0] ** 2 * coef * score) / lv.alpha_bar[0]

    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, num: int, generator: torch.Generator | None = None,
                batch_size: int = 256, progress=None, steps: int | None = None, infer_steps: int | None = None,
                lr: float | None = None) -> torch.Tensor:
        """`num` completions of each image (N, C, H, W) in model space where mask (N or 1, 1 or C, H, W)
        is 0 (sec. 5.4.7), by Algorithm 5 with `steps` Langevin steps per level; observed pixels are kept
        exactly. Returns (N, num, C, H, W)."""
        if infer_steps is not None or lr is not None:
            raise EbmkitError("--infer-steps and --lr set CoopFlow's inference; CDRL inpaints with its sampler "
                              "(--steps: Langevin steps per level)")
        n = len(images)
        x = images.repeat_interleave(num, 0)
        m = mask.expand(n, *mask.shape[1:]).repeat_interleave(num, 0)
        out = self.sample(n * num, generator, batch_size, progress, steps=steps, observed=(x, m))
        return out.reshape(n, num, *self.shape)

    # ------------------------------------------------------------------------------ labels
    def class_labels(self, classes: torch.Tensor) -> list[torch.Tensor]:
        """Class ids (num,) -> the one network-label tensor of Eq. 5.9 (user class c is label c + 1)."""
        return [classes.long() + 1]

    def attribute_labels(self, wanted: dict[int, int], num: int) -> list[torch.Tensor]:
        """{attribute index: value index} -> one label tensor per controlled attribute (Eq. 5.11 / 5.12)."""
        cond = self.preset.conditioning
        return [torch.full((num,), cond.attribute_label(j, v), dtype=torch.long) for j, v in wanted.items()]

    # ------------------------------------------------------------------------------ OOD (sec. 5.4.5)
    @torch.no_grad()
    def energy(self, x: torch.Tensor, level: int = 0, draws: int = 4, generator: torch.Generator | None = None,
               use_ema: bool = True) -> torch.Tensor:
        """(B,) OOD score: the energy E = -f of x noised to `level` (the lowest, 0, in sec. 5.4.5),
        averaged over `draws` noise draws; unconditional; higher = more anomalous."""
        if not 0 <= level < self.levels.num_levels:
            raise EbmkitError(f"level {level} out of range 0..{self.levels.num_levels - 1}")
        lv, x = self.levels, x.to(self.device)
        noised = [lv.alpha_bar[level] * x + lv.sigma_bar[level] * torch.randn(x.shape, generator=generator, device=self.device)
                  for _ in range(draws)]
        return -torch.stack([self.log_density(xt, level, use_ema) for xt in noised]).mean(0).cpu()

    # ------------------------------------------------------------------------------ pictures
    @property
    def num_levels(self) -> int:
        return self.levels.num_levels

    def log_density(self, x: torch.Tensor, level: int, use_ema: bool = True) -> torch.Tensor:
        """Unnormalised log p_t(x_t) = f_hat(y_scale_t x; lambda_t) / s_t^2 at noise level `level`
        (conditional EBMs with the null label: the unconditional density)."""
        ebm = (self.ema if use_ema else self.nets)["ebm"]
        t = torch.full((len(x),), level, device=self.device)
        null = torch.zeros(len(x), dtype=torch.long, device=self.device) if self.preset.conditioning.num_labels else None
        with torch.no_grad():
            return ebm(self.levels.y_scale[level] * x, self.ebm_noise(t), null) / self.levels.step_size[level] ** 2

    def noised_levels(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Data at the noise levels T-1, ..., 0 (the top row of Fig. 5.5)."""
        lv = self.levels
        e = torch.randn(x0.shape, generator=generator, device=x0.device)
        return [lv.alpha_bar[t] * x0 + lv.sigma_bar[t] * e for t in reversed(range(lv.num_levels))]

    def preview(self, path: Path, generator: torch.Generator, data: Dataset) -> None:
        if data.kind == "points" and self.shape[0] != 2:
            self.preview_points(self.sample(2000, generator), path)
        elif data.kind == "points":
            n = 2000
            levels = self.sample_levels(n, generator)
            idx = torch.randperm(len(data), generator=generator, device=generator.device)[:n].cpu()
            viz.levels_figure_2d(self, self.units.to_model(data.model_space(idx)).to(self.device), levels, path, generator)
        else:
            viz.save_grid(self.sample(self.preset.train.num_preview, generator), path)
