"""NeRF-LEBM: a conditional NeRF image generator with EBM priors on its shape and appearance latents
(thesis ch. 3).

The model (Eq. 3.3): I = G_theta(z_a, z_s, xi) + eps, eps ~ N(0, sigma_eps^2 I), with z_s ~ p_alpha_s and
z_a ~ p_alpha_a, each an exponential tilting exp(f(z)) q_0(z) of a reference q_0 (Eq. 3.4, 3.5). G renders
the conditional NeRF g_theta (Eq. 3.2) from camera pose xi by Eq. 3.1.

One training iteration, as `train_step` reads (Algorithm 1 with inference "mcmc" or "persistent",
Algorithm 2 with "amortized"):

    3: z^- ~ p_alpha by K- prior Langevin steps from q_0             Eq. 3.10-3.13 (`prior_samples`)
    4: z^+ ~ p_beta(z | I, xi): K+ posterior Langevin steps           Eq. 3.14, 3.15 (`infer`)
       ("persistent": one Adam step on each object's own latents; "amortized": z^+ ~ q_phi(z | I))
    5-6: alpha: minimise f(z^-) - f(z^+) for each prior               Eq. 3.7, 3.8 (3.18, 3.19)
    7: theta (and phi): minimise -log p_theta(I | z^+, xi)            Eq. 3.9 (the ELBO of Eq. 3.17/3.20)

Unknown poses (sec. 3.4.4): vMF posteriors on the angles join the ELBO. With inference.choose_ends (not
in the thesis; without it the inferred camera folds front onto back) each view's end is also chosen, by
the likelihood, and a flip head learns to predict it (`choose_ends`).

Posterior chains update z_s and z_a jointly, as the authors' code does (the thesis alternates Eq. 3.14
and 3.15; for small steps the two agree). Images live in [0, 1], as in the thesis; the likelihood sums
over the sampled rays and colour channels of the observed pixels only (sec. 3.5.7). Training renders a
random subset of rays per image (the authors' N_rand), `render.rays_per_image` of them. With
render.importance_samples the generator has a fine network (NeRF's hierarchical sampling, the authors' amortized
Carla code): the likelihood scores both passes, as their loss does, and pictures show `render.image_pass`.
"""

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from ebmkit import viz
from ebmkit.data import Dataset
from ebmkit.errors import EbmkitError
from ebmkit.langevin import langevin
from ebmkit.methods.base import Batch, Method, OptimSpec
from ebmkit.nerf import vmf
from ebmkit.nerf.camera import canonical_pose, pose_rays
from ebmkit.nerf.render import Rendered, ray_subset, render_fine, render_rays
from ebmkit.nets.coopflow_ebm import SwishMLP
from ebmkit.nets.nerf import ConditionalNeRF, FiLMNeRF
from ebmkit.nets.film_siren import FiLMSiren
from ebmkit.nets.nerf_encoder import Encoder, GaussianHeads, LinearGaussianHeads
from ebmkit.nets.posenet import PoseNetEncoder, PoseNetHeads

TABLE_3_1_LAYERS = {"small": 2, "large": 4}  # Linear + swish layers before the scalar output


class PersistentLatents(nn.Module):
    """One (z_s, z_a) chain per training object, carried across iterations (the ShapeNet setting)."""

    def __init__(self, num_objects: int, dim: int):
        super().__init__()
        self.z = nn.Parameter(torch.zeros(num_objects, 2, dim))

    def forward(self, objects: torch.Tensor) -> torch.Tensor:
        return self.z[objects]  # (B, 2, dim): z_s, z_a


class NeRFLEBM(Method):
    name = "nerf_lebm"
    energy_pairs = (("energy_prior_s", "energy_neg_prior_s"), ("energy_prior_a", "energy_neg_prior_a"))

    def __init__(self, preset, shape, device="cpu"):
        super().__init__(preset, shape, device)
        if preset.inference.kind == "persistent":  # the chains start at draws from q_0, fixed by the seed
            g = torch.Generator().manual_seed(preset.train.seed)
            z = self.preset.latents.sigma * torch.randn(self.nets["latents"].z.shape, generator=g)
            self.nets["latents"].z.data.copy_(z)
            self.ema["latents"].z.data.copy_(z)

    # ------------------------------------------------------------------------------ networks
    def build_networks(self) -> dict[str, nn.Module]:
        p, lat = self.preset, self.preset.latents
        g = p.generator
        if g.arch == "nerf":
            gen = ConditionalNeRF(lat.dim, g.width, g.depth, g.skip, g.freqs_xyz, g.freqs_dir, g.map_hidden, g.map_out,
                                  fine=p.render.importance_samples > 0)
        else:
            gen = (FiLMNeRF if g.arch == "film" else FiLMSiren)(lat.dim, g.width, g.depth, g.map_hidden)
        nets = {"gen": gen}
        for name, prior in (("prior_s", lat.shape), ("prior_a", lat.appearance)):
            if prior.kind == "ebm":
                nets[name] = SwishMLP(lat.dim, prior.hidden, TABLE_3_1_LAYERS[prior.size])
        if p.inference.kind == "amortized":
            inf = p.inference
            imagenet = inf.encoder_input == "imagenet"
            if inf.heads == "posenet":  # the authors' unknown-pose layout
                nets["encoder"] = PoseNetEncoder(inf.encoder_width, imagenet)
            else:
                nets["encoder"] = Encoder(inf.poses == "unknown", inf.choose_ends, inf.encoder_width,
                                          classifier=inf.heads == "linear", imagenet=imagenet)
            heads = {"mlp": GaussianHeads, "linear": LinearGaussianHeads, "posenet": PoseNetHeads}[inf.heads]
            nets["heads"] = heads(lat.dim, nets["encoder"].dim)
        if p.inference.kind == "persistent":
            if p.data.num_objects is None:
                raise EbmkitError("inference.kind = 'persistent' keeps one chain per object: set data.num_objects")
            nets["latents"] = PersistentLatents(p.data.num_objects, lat.dim)
        return nets

    def optim_specs(self) -> dict[str, OptimSpec]:
        t, inf = self.preset.train, self.preset.inference
        lrs = {"gen": t.lr_gen, "prior_s": t.lr_prior, "prior_a": t.lr_prior, "encoder": t.lr_encoder,
               "heads": t.lr_heads, "latents": inf.step_size}
        return {name: OptimSpec(lrs[name], t.betas, grad_clip=t.grad_clip if name == "gen" else None)
                for name in self.nets}

    def check_data(self, data: Dataset) -> None:
        super().check_data(data)
        if data.poses is None and self.preset.inference.poses == "known":
            raise EbmkitError(f"data set '{data.name}' has no camera poses; use inference.poses = 'unknown'")
        if self.preset.inference.kind == "persistent" and int(data.objects.max()) >= self.preset.data.num_objects:
            raise EbmkitError(f"data set '{data.name}' has {int(data.objects.max()) + 1} objects, "
                              f"data.num_objects says {self.preset.data.num_objects}")
        views = self.preset.train.views
        if min(len(v) for v in views_of(data)) < views:
            raise EbmkitError(f"train.views = {views} but some objects of '{data.name}' have fewer images")

    def use_data(self, data: Dataset) -> None:
        """The checks; also records each object's images, from which make_batch draws the other views."""
        super().use_data(data)
        self.views_of = views_of(data)

    def make_batch(self, data: Dataset, idx: torch.Tensor) -> Batch:
        """Images idx (B,) and, per image, views - 1 other random views of its object: x (B, V, 3, S, S)
        in [0, 1], poses (B, V, 2), masks (B, V, 1, S, S) or None, objects (B,)."""
        objects = data.objects[idx]
        views = [idx]
        for _ in range(self.preset.train.views - 1):
            views.append(torch.stack([self.views_of[o][torch.randint(len(self.views_of[o]), ())] for o in objects.tolist()]))
        v = torch.stack(views, 1)                                                   # (B, V)
        x = data.x[v].float().div(255).to(self.device)
        poses = data.poses[v].float().to(self.device) if data.poses is not None else None
        masks = data.masks[v].float().to(self.device) if data.masks is not None else None
        return Batch(x=x, poses=poses, masks=masks, objects=objects.to(self.device))

    # ------------------------------------------------------------------------------ the generator G
    def render_passes(self, gen: nn.Module, z: torch.Tensor, poses: torch.Tensor, pixels: torch.Tensor | None = None,
                      stratified: bool = False, generator: torch.Generator | None = None,
                      fine: bool = True) -> list[Rendered]:
        """G(z_a, z_s, xi) at some pixels, Eq. 3.1: z (B, 2, dim) as (z_s, z_a), poses (B, V, 2) as (elevation,
        azimuth), pixels (B, V, R) flat indices or None for every pixel; `generator` draws stratified depths.
        -> the coarse render and, with render.importance_samples and `fine`, the fine one, of rays (B, V, R)."""
        b, v = poses.shape[:2]
        size = self.shape[-1]
        cam = self.preset.render
        origins, dirs = pose_rays(poses[..., 0].flatten(), poses[..., 1].flatten(), size, cam.fov_deg, cam.radius,
                                  unit=cam.quadrature != "nerf", centres=cam.pixel_centres, up=cam.camera_up)
        dirs = dirs.flatten(1, 2)                                                          # (BV, S^2, 3)
        if pixels is not None:
            dirs = dirs.gather(1, pixels.flatten(0, 1)[..., None].expand(-1, -1, 3))
        r = dirs.shape[1]
        origins = origins.view(b, v, 1, 3).expand(b, v, r, 3).reshape(b, v * r, 3)
        dirs = dirs.reshape(b, v * r, 3)

        def field(points, view_dirs, **fine):  # (B, VR, N, 3) -> sigma (B, VR, N), rgb (B, VR, N, 3)
            n = points.shape[2]
            sigma, rgb = gen(points.flatten(1, 2), view_dirs.flatten(1, 2), z[:, 0], z[:, 1], **fine)
            return sigma.view(b, v * r, n), rgb.view(b, v * r, n, 3)

        look = dict(stratified=stratified, generator=generator, background=float(cam.white_background),
                    quadrature=cam.quadrature)
        passes = [render_rays(field, origins, dirs, cam.num_samples, cam.near, cam.far, **look)]
        if cam.importance_samples and fine:
            passes.append(render_fine(partial(field, fine=True), origins, dirs, passes[0], cam.importance_samples,
                                      cam.far, **look))
        return [Rendered(*(x.view(b, v, r, *x.shape[2:]) for x in out)) for out in passes]

    def render(self, gen: nn.Module, z: torch.Tensor, poses: torch.Tensor, pixels: torch.Tensor | None = None,
               stratified: bool = False, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The picture of render_passes (render.image_pass: the fine pass if any, or the coarse one): rgb (B, V, R, 3),
        depth (B, V, R)."""
        shown = self.render_passes(gen, z, poses, pixels, stratified, generator,
                                   fine=self.preset.render.image_pass == "fine")[-1]
        return shown.rgb, shown.depth

    def log_likelihood(self, gen: nn.Module, z: torch.Tensor, batch: Batch, pixels: torch.Tensor,
                       poses: torch.Tensor | None = None, generator: torch.Generator | None = None,
                       per_view: bool = False) -> torch.Tensor:
        """(B,) log p_theta(I | z, xi) up to a constant: -||I - G||^2 / (2 sigma_eps^2) over the sampled
        rays of the observed pixels (Eq. 3.3; sec. 3.5.7 for masks), summed over the render passes (render_passes);
        (B, V), each view's, with per_view."""
        passes = self.render_passes(gen, z, batch.poses if poses is None else poses, pixels, stratified=True,
                                    generator=generator)
        target = pick(batch.x, pixels)                                                     # (B, V, R, 3)
        sq = sum((target - out.rgb).pow(2) for out in passes)                              # NeRF's loss: every pass
        if batch.masks is not None:
            sq = sq * pick(batch.masks, pixels)
        inf = self.preset.inference
        ll = -inf.likelihood_scale * sq.flatten(2).sum(2) / (2 * inf.sigma_eps ** 2)        # (B, V)
        return ll if per_view else ll.sum(1)

    # ------------------------------------------------------------------------------ the priors
    def tilt(self, z: torch.Tensor, nets: dict[str, nn.Module], detach: bool = False) -> torch.Tensor:
        """(B,) f_s(z_s) + f_a(z_a), the exponential tilting of Eq. 3.4, 3.5 (0 for Gaussian priors).
        detach=True evaluates f with frozen parameters, so only z receives the gradient."""
        out = torch.zeros(len(z), device=z.device)
        for i, name in enumerate(("prior_s", "prior_a")):
            if name in nets:
                f = nets[name]
                params = {k: t.detach() if detach else t for k, t in f.named_parameters()}
                out = out + torch.func.functional_call(f, params, (z[:, i],))
        return out

    def log_prior(self, z: torch.Tensor, nets: dict[str, nn.Module], detach: bool = False) -> torch.Tensor:
        """(B,) log p_alpha(z_s) + log p_alpha(z_a) up to constants: f(z) + log q_0(z) (Eq. 3.4, 3.5)."""
        lat = self.preset.latents
        out = self.tilt(z, nets, detach)
        if lat.reference == "gaussian":
            out = out - z.pow(2).flatten(1).sum(1) / (2 * lat.sigma ** 2)
        return out

    def steps_now(self, steps: int, step: int) -> int:
        """K+ or K- at training iteration `step`: 0 before train.prior_start, then a linear ramp (authors' code)."""
        t = self.preset.train
        if not t.ramp:
            return steps
        return int(min(steps, max(0.0, steps * (step - t.prior_start) / t.ramp)))

    def prior_samples(self, num: int, steps: int | None = None, generator: torch.Generator | None = None,
                      nets: dict[str, nn.Module] | None = None) -> torch.Tensor:
        """z^- (num, 2, dim): K- Langevin steps of Eq. 3.10-3.13 from q_0 with the priors of `nets` (default:
        the EMA copies), step size delta- and the noise weight of Table 3.3. Gaussian priors (no networks)
        draw q_0 directly."""
        lat, nets = self.preset.latents, self.ema if nets is None else nets
        z0 = lat.sigma * torch.randn((num, 2, lat.dim), generator=generator, device=self.device)
        if not any(k in self.nets for k in ("prior_s", "prior_a")):
            return z0
        steps = lat.prior_steps if steps is None else steps
        return langevin(lambda z: self.log_prior(z, nets), z0, step_size=lat.prior_step_size, steps=steps,
                        noise_weight=lat.prior_noise, generator=generator, autocast=self.autocast).x

    # ------------------------------------------------------------------------------ inference
    def random_pixels(self, b: int, v: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, V, R) distinct random flat pixel indices per image (the authors' N_rand)."""
        s2 = self.shape[-1] * self.shape[-2]
        return ray_subset(b * v, s2, min(self.preset.render.rays_per_image, s2), generator,
                          self.device).view(b, v, -1)

    def infer(self, batch: Batch, pixels: torch.Tensor, steps: int, z0: torch.Tensor | None = None,
              use_ema: bool = False) -> torch.Tensor:
        """z^+ (B, 2, dim): `steps` posterior Langevin steps (Eq. 3.14, 3.15, jointly) on
        log p_theta(I | z, xi) + log p_alpha(z) from z0 (default: draws from q_0); noiseless unless
        inference.noise (sec. 3.5.3). The generator sees fresh stratified depths at every step."""
        nets, inf = (self.ema if use_ema else self.nets), self.preset.inference
        if z0 is None:
            z0 = self.preset.latents.sigma * torch.randn((len(batch.x), 2, self.preset.latents.dim), device=self.device)
        return langevin(lambda z: self.log_likelihood(nets["gen"], z, batch, pixels) + self.log_prior(z, nets, detach=True),
                        z0, step_size=inf.step_size, steps=steps, noise_weight=float(inf.noise), autocast=self.autocast).x

    def amortized(self, nets: dict[str, nn.Module], batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Algorithm 2, step 4: z ~ q_phi(z | I) (B, 2, dim) from each object's first view by the
        reparameterisation, with the KL of q_phi to q_0 = N(0, sigma^2 I) (B,) (the VAE terms of Eq. 3.20).
        For unknown poses every view also gets vMF posteriors on its angles: sampled poses (B, V, 2) and
        their KL to the uniform prior (Eq. 3.21) join the KL."""
        b, v = batch.x.shape[:2]
        h, pose_mu, pose_kappa, flip_logit = nets["encoder"](batch.x.flatten(0, 1))        # (BV, 512), ...
        mu_s, log_s, mu_a, log_a = nets["heads"](h.view(b, v, -1)[:, 0])
        mu, log_sigma = torch.stack([mu_s, mu_a], 1), torch.stack([log_s, log_a], 1)        # (B, 2, dim)
        z = mu + log_sigma.exp() * torch.randn_like(mu)
        s0 = self.preset.latents.sigma
        kl = (0.5 * ((mu.pow(2) + (2 * log_sigma).exp()) / s0 ** 2 - 1) - log_sigma + math.log(s0)).flatten(1).sum(1)
        poses = None
        if pose_mu is not None:
            u = vmf.sample(pose_mu.flatten(0, 1), pose_kappa.flatten())                      # (2BV, 2) as (cos, sin)
            poses = self.pose_angles(vmf.angle_of(u).view(b, v, 2))                           # (elevation, azimuth)
            kl = kl + vmf.kl_to_uniform(pose_kappa, 2).view(b, -1).sum(1)
        return z, kl, poses, None if flip_logit is None else flip_logit.view(b, v)

    def pose_angles(self, angles: torch.Tensor) -> torch.Tensor:
        """The camera (..., 2) (elevation, azimuth) of the vMF angles (..., 2) in (-pi, pi]: the angles
        themselves (sec. 3.4.4), or with inference.choose_ends the elevation's circle spread over the band
        render.elevation and the azimuth's over half a turn, the view's end being chosen apart."""
        if not self.preset.inference.choose_ends:
            return angles
        lo, hi = (math.radians(a) for a in self.preset.render.elevation)
        return torch.stack([lo + (hi - lo) * (angles[..., 0] + math.pi) / (2 * math.pi), angles[..., 1] / 2], -1)

    def choose_ends(self, gen: nn.Module, z: torch.Tensor, batch: Batch, pixels: torch.Tensor,
                    poses: torch.Tensor, flip_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A hard E-step over each view's end h: the camera at poses (B, V, 2) or turned half round (h = 1),
        whichever is likelier a posteriori (both renders scored without gradients on the same rays and
        depths): gain = log p(I | turned) - log p(I | poses) + b, with b the prior log-odds of h = 1
        (the encoder's buffer end_bias). The flip head learns p(h = 1 | I) = sigmoid(gain) by its
        cross-entropy weighted by |gain| (views whose ends look alike teach it little).
        A uniform azimuth over the full turn gives h = 1 for half the views, whatever the frame. b keeps it
        so: after each batch it moves by inference.end_balance x (1/2 - turned share) x mean |gain| (dual
        ascent on that constraint). Without it a model can turn every view and leave half the turn unseen.
        -> the chosen poses (B, V, 2), the head's loss (B,), whether each view was turned (B, V)."""
        turned = poses + torch.tensor([0.0, math.pi], device=poses.device)
        seed = int(torch.randint(2**62, ()))
        bias = self.nets["encoder"].end_bias
        with torch.no_grad():
            ll = [self.log_likelihood(gen, z, batch, pixels, p, torch.Generator(self.device).manual_seed(seed),
                                      per_view=True) for p in (poses, turned)]
            gain = ll[1] - ll[0] + bias                                                     # (B, V)
            flip = gain > 0
            bias += self.preset.inference.end_balance * (0.5 - flip.float().mean()) * gain.abs().mean()
        head = gain.abs() * nn.functional.binary_cross_entropy_with_logits(flip_logit, gain.sigmoid(), reduction="none")
        return torch.where(flip[..., None], turned, poses), head.sum(1), flip

    # ------------------------------------------------------------------------------ Algorithms 1 and 2
    def train_step(self, batch: Batch, nets: dict[str, nn.Module], step: int = 0) -> tuple[dict, dict]:
        inf, lat = self.preset.inference, self.preset.latents
        b, v = batch.x.shape[:2]
        pixels = self.random_pixels(b, v)
        losses, metrics = {}, {}
        poses = None
        if inf.kind == "mcmc":                                                   # step 4, Algorithm 1
            z_pos = self.infer(batch, pixels, self.steps_now(inf.steps, step))
            loglik = self.log_likelihood(nets["gen"], z_pos, batch, pixels)
            losses["gen"] = -loglik.mean()                                       # Eq. 3.9
        elif inf.kind == "persistent":                                           # one Adam step per chain
            z_pos = nets["latents"](batch.objects)
            loglik = self.log_likelihood(nets["gen"], z_pos, batch, pixels)
            losses["gen"] = -(loglik + self.log_prior(z_pos, self.nets, detach=True)).mean()
            z_pos = z_pos.detach()
        else:                                                                    # Algorithm 2
            z_pos, kl, poses, flip_logit = self.amortized(nets, batch)
            if flip_logit is not None:
                poses, head, flip = self.choose_ends(nets["gen"], z_pos, batch, pixels, poses, flip_logit)
                losses["flip"], metrics["turned"] = head.mean(), flip.float().mean()
                metrics["end_bias"] = self.nets["encoder"].end_bias.clone()
            loglik = self.log_likelihood(nets["gen"], z_pos, batch, pixels, poses)
            losses["gen"] = (kl - loglik - self.tilt(z_pos, self.nets, detach=True)).mean()  # -ELBO, Eq. 3.17 / 3.20
            metrics["kl"] = kl.detach().mean()
            z_pos = z_pos.detach()
        metrics["mse"] = -loglik.detach().mean() * 2 * inf.sigma_eps ** 2 / (inf.likelihood_scale * pixels[0].numel() * 3)
        if step >= self.preset.train.prior_start:                                # steps 3, 5, 6
            z_neg = self.prior_samples(lat.prior_samples, self.steps_now(lat.prior_steps, step), nets=self.nets)
            for i, name in enumerate(("prior_s", "prior_a")):
                if name in nets:
                    f_pos, f_neg = nets[name](z_pos[:, i]), nets[name](z_neg[:, i])
                    losses[name] = f_neg.mean() - f_pos.mean()                  # Eq. 3.7 / 3.8
                    metrics[f"energy_{name}"] = -f_pos.detach().mean()
                    metrics[f"energy_neg_{name}"] = -f_neg.detach().mean()      # the guard sees runaway prior chains
        return losses, metrics

    # ------------------------------------------------------------------------------ unseen objects (sec. 3.5.6)
    def infer_objects(self, images: torch.Tensor, poses: torch.Tensor, masks: torch.Tensor | None = None,
                      steps: int | None = None, generator: torch.Generator | None = None,
                      progress=None) -> torch.Tensor:
        """z (B, 2, dim) of unseen objects from views images (B, V, 3, S, S) in [0, 1] at poses (B, V, 2),
        with the EMA networks. Amortized models: the encoder's posterior mean from the first view. Others:
        `steps` (inference.test_steps) steps on -log p(I, z | xi) from q_0 with a fresh random subset of
        rays each: noiseless Langevin for "mcmc", Adam at inference.step_size for "persistent" (as each
        model inferred its training objects). `generator` draws the start, the rays and their depths, so
        a seed fixes the result. progress(k): k steps done."""
        inf, lat = self.preset.inference, self.preset.latents
        batch = Batch(x=images.to(self.device), poses=poses.to(self.device),
                      masks=None if masks is None else masks.to(self.device))
        b, v = images.shape[:2]
        if inf.kind == "amortized":
            with torch.no_grad():
                h = self.ema["encoder"](batch.x[:, 0])[0]
                mu_s, _, mu_a, _ = self.ema["heads"](h)
            return torch.stack([mu_s, mu_a], 1)
        steps = inf.test_steps if steps is None else steps
        z = lat.sigma * torch.randn((b, 2, lat.dim), generator=generator, device=self.device)

        def log_density(z):  # (B,) with new rays each call
            pixels = self.random_pixels(b, v, generator)
            return (self.log_likelihood(self.ema["gen"], z, batch, pixels, generator=generator)
                    + self.log_prior(z, self.ema, detach=True))

        def tick(z, k):  # the engine's per-step hook, used only to report progress
            progress(1)
            return z

        if inf.kind == "mcmc":
            return langevin(log_density, z, step_size=inf.step_size, steps=steps, noise_weight=0.0,
                            project=None if progress is None else tick, autocast=self.autocast).x
        z = z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=inf.step_size, betas=self.preset.train.betas)
        for _ in range(steps):
            with torch.enable_grad():
                opt.zero_grad()
                (-log_density(z).sum()).backward()
            opt.step()
            if progress is not None:
                progress(1)
        return z.detach()

    @torch.no_grad()
    def infer_poses(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, 2) camera poses (elevation, azimuth) in radians of images (N, 3, S, S) in [0, 1]: the mean
        directions of the EMA encoder's vMF posteriors (models trained with inference.poses = "unknown"),
        turned half round where the flip head says so (inference.choose_ends), named canonically
        (`canonical_pose`: the encoder may place a camera past the pole), except with render.camera_up "orbit",
        where the other name would turn the image upside down."""
        encoder = self.ema["encoder"] if "encoder" in self.ema else None
        if encoder is None or encoder.pose is None:
            raise EbmkitError("this model was trained with known camera poses: it has no pose posterior "
                              "(inference.poses = 'unknown' trains one)")
        out = []
        for i in range(0, len(images), batch_size):
            _, mu, _, flip_logit = encoder(images[i:i + batch_size].to(self.device))
            pose = self.pose_angles(vmf.angle_of(mu))
            if flip_logit is not None:
                pose[:, 1] += math.pi * (flip_logit > 0)
            out.append(pose.cpu())
        poses = torch.cat(out)
        if self.preset.render.camera_up == "orbit":
            return poses
        return torch.stack(canonical_pose(*poses.unbind(1)), 1)

    # ------------------------------------------------------------------------------ sampling
    def random_poses(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(num, 1, 2) poses for generation: azimuth uniform, elevation uniform in render.elevation."""
        lo, hi = (math.radians(a) for a in self.preset.render.elevation)
        u = torch.rand((num, 2), generator=generator, device=self.device)
        return torch.stack([lo + (hi - lo) * u[:, 0], 2 * math.pi * u[:, 1]], 1)[:, None]

    @torch.no_grad()
    def render_images(self, z: torch.Tensor, poses: torch.Tensor, use_ema: bool = True,
                      rays: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole images of objects z (B, 2, dim) from poses (B, V, 2): rgb (B, V, 3, S, S) in [0, 1] and
        inverse depth (B, V, 1, S, S), rendered at bin-centre depths, about `rays` rays at a time."""
        gen = (self.ema if use_ema else self.nets)["gen"]
        b, v = poses.shape[:2]
        s = self.shape[-1]
        pixels = torch.arange(s * s, device=self.device)
        rgb, depth = [], []
        for part in pixels.split(max(1, rays // (b * v))):
            c, d = self.render(gen, z, poses, part.expand(b, v, -1))
            rgb.append(c)
            depth.append(d)
        rgb = torch.cat(rgb, 2).view(b, v, s, s, 3).permute(0, 1, 4, 2, 3)
        depth = torch.cat(depth, 2).view(b, v, 1, s, s)
        return rgb, 1 / depth.clamp(min=self.preset.render.near)

    def sample_levels(self, num: int, generator: torch.Generator | None = None, steps: int | None = None,
                      use_ema: bool = True, poses: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[images (num, 3, S, S) in model space, [-1, 1], like every method's samples; the renders
        themselves are in [0, 1]]: z from the priors by `steps` Langevin steps (default K-), a random pose
        each (or `poses` (num, 2))."""
        z = self.prior_samples(num, steps, generator, nets=self.ema if use_ema else self.nets)
        poses = self.random_poses(num, generator) if poses is None else poses[:, None]
        return [2 * self.render_images(z, poses, use_ema)[0][:, 0] - 1]

    def grid(self, kind: str, rows: int, cols: int, generator: torch.Generator | None = None,
             use_ema: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The grids of Fig. 3.4, as (rows * cols) images and inverse depths in [0, 1], row-major.
        "shape-appearance": one pose; z_s varies along rows, z_a along columns (Fig. 3.4a).
        "pose": each row one object, the azimuth sweeping a full turn along the columns (Fig. 3.4b).
        "random": random objects at random poses."""
        if kind == "random":
            z, poses = self.prior_samples(rows * cols, generator=generator), self.random_poses(rows * cols, generator)
        elif kind == "shape-appearance":
            z = self.prior_samples(max(rows, cols), generator=generator)
            zs, za = z[:rows, 0], z[:cols, 1]
            z = torch.stack([zs[:, None].expand(-1, cols, -1), za[None].expand(rows, -1, -1)], 2).flatten(0, 1)
            poses = self.random_poses(1, generator).expand(rows * cols, 1, 2)
        elif kind == "pose":
            z = self.prior_samples(rows, generator=generator).repeat_interleave(cols, 0)
            elevation = self.random_poses(rows, generator)[:, 0, 0].repeat_interleave(cols)
            azimuth = torch.linspace(0, 2 * math.pi, cols + 1, device=self.device)[:-1].repeat(rows)
            poses = torch.stack([elevation, azimuth], 1)[:, None]
        else:
            raise EbmkitError(f"unknown grid {kind!r}: choose shape-appearance, pose or random")
        rgb, inv_depth = self.render_images(z, poses, use_ema)
        lo, hi = 1 / self.preset.render.far, 1 / self.preset.render.near
        return rgb[:, 0], ((inv_depth[:, 0] - lo) / (hi - lo)).clamp(0, 1).expand(-1, 3, -1, -1)

    def preview(self, path: Path, generator: torch.Generator, data: Dataset) -> None:
        viz.save_grid(self.sample(self.preset.train.num_preview, generator), path)


def views_of(data: Dataset) -> list[torch.Tensor]:
    """Each object's image indices."""
    return [torch.nonzero(data.objects == o).flatten() for o in range(int(data.objects.max()) + 1)]


def pick(images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Values of images (B, V, C, H, W) at flat pixel indices (B, V, R) -> (B, V, R, C)."""
    flat = images.flatten(3).transpose(2, 3)                                    # (B, V, HW, C)
    return flat.gather(2, pixels[..., None].expand(-1, -1, -1, flat.shape[-1]))
