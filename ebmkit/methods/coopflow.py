"""CoopFlow: cooperative training of a normalizing flow and a Langevin flow (thesis ch. 4, Algorithm 3).

One iteration of Algorithm 3, as `train_step` reads:

    3: x_i ~ p_data                                         the batch
    4: z_i ~ q_0 = N(0, I)                                  Eq. 4.4
    5: x_hat_i = g_alpha(z_i)                               the normalizing flow, no gradient
    6: x_tilde_i = T Langevin steps from x_hat_i            Eq. 4.2 on f_theta (the Langevin flow)
    7: alpha: minimise -1/m sum log q_alpha(x_tilde_i)      Eq. 4.5, the flow's MLE on the synthesis
    8: theta: minimise 1/m sum f(x_tilde_i) - 1/m sum f(x_i)  the learning gradient of Eq. 2.2

x_tilde is detached, so neither network back-propagates through the other (sec. 4.3.4). The Langevin
step is the one the authors coded (implementation notes): x <- clamp(x + clamp(s^2/2 grad f, -c, c)),
with the noise term of Eq. 4.2 removed (sec. 4.5.2), or decayed during training by Eq. 4.14 (sec. 4.9).
Sampling is steps 4-6 with the test step size of Table 4.4.

Phases (CoopFlow(Pre), sec. 4.5.2): `pretrain_iterations` of flow MLE on data, then `warmup_iterations`
updating only the EBM from the frozen flow's proposals, then Algorithm 3. Modes (Table 4.7): "flow" is
the normalizing flow alone, MLE on data throughout; "langevin" is the short-run Langevin flow alone,
without a flow: chains from N(0, I) for the EBM of Eq. 4.9 with a Gaussian reference (sec. 4.3.3), or
from the uniform p_0 of Eq. 4.2 (NHZ19), by langevin.start.
"""

import math
from dataclasses import astuple, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ebmkit import viz
from ebmkit.data import Dataset
from ebmkit.errors import EbmkitError
from ebmkit.langevin import langevin
from ebmkit.methods.base import Batch, Method, OptimSpec
from ebmkit.nets import FlowPP, PointFlow
from ebmkit.nets.coopflow_ebm import CoopFlowEBM, SwishMLP
from ebmkit.nets.flow_layers import ActNorm, standard_normal_logprob


def noise_decay(epoch: int, K: int) -> float:
    """Eq. 4.14, the weight of the Langevin noise in training epoch `epoch`: (1 - epoch / K)^20, and 0
    from epoch K on (the max is taken inside the power: the thesis' outer max would let the weight
    grow again after epoch 2K)."""
    return max(1.0 - epoch / K, 0.0) ** 20


def gaussian_log_density(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,) log N(x; 0, I) up to its constant: the reference q_0 of Eq. 4.9."""
    return -0.5 * x.pow(2).flatten(1).sum(1)


@dataclass
class Inference:
    """What reconstruction infers for a batch (sec. 4.4.3)."""

    x_hat: torch.Tensor   # (B, *shape) the Langevin start x_hat*
    x: torch.Tensor       # (B, *shape) the reconstruction F(x_hat*)
    z: torch.Tensor       # (B, *shape) the latent g^{-1}(x_hat*)
    curve: torch.Tensor   # (B, steps + 1) per-pixel MSE on the observed pixels, before each step and at the end


class CoopFlow(Method):
    name = "coopflow"
    train_size: int | None = None  # examples in the training set, for the epochs of Eq. 4.14
    flow_ready: bool = False       # the flow's ActNorms have their data-dependent initialisation
    partly_used = ("flow",)        # step 7 fits x_tilde without the dequantizer that data steps train

    @property
    def num_levels(self) -> int:
        """The stages of the generator, read as levels by the 2-D figure of `ebmkit sample` (Fig. 4.3): level 1
        the start of the Langevin flow (the normalizing flow, or p_0 in mode "langevin"), level 0 the EBM and
        its samples. Mode "flow" has the one level 0, the normalizing flow."""
        return 1 if self.preset.train.mode == "flow" else 2

    # ------------------------------------------------------------------------------ networks
    def build_networks(self) -> dict[str, nn.Module]:
        p, shape, mode = self.preset, self.shape, self.preset.train.mode
        images = len(shape) == 3
        nets = {}
        if mode != "langevin":
            f = p.flow
            if (f.arch == "flowpp") != images:
                raise EbmkitError(f"flow.arch {f.arch!r} does not fit examples of shape {shape} "
                                  f"(flowpp is for images, affine and mixlogcdf for points)")
            if f.arch == "flowpp":
                try:
                    nets["flow"] = FlowPP(shape[0], shape[1], f.num_channels, f.num_blocks, f.num_components,
                                          f.num_heads, f.dropout, f.scales, f.factor_out, f.use_dequant,
                                          f.num_dequant_blocks, f.bound, f.num_dequant_components,
                                          f.dequant_context_residual, f.inverse_cdf_clamp)
                except ValueError as err:
                    raise EbmkitError(f"flow.scales: {err}") from None
            elif shape[0] < 2:
                raise EbmkitError("a coupling flow needs points of D >= 2 (a coupling splits the coordinates); "
                                  "train.mode = 'langevin' takes any D")
            else:
                nets["flow"] = PointFlow(shape[0], f.hidden, f.num_couplings, f.num_hidden_layers, f.arch,
                                          f.num_components)
        if mode != "flow":
            e = p.ebm
            if (e.arch == "coopflow") != images:
                raise EbmkitError(f"ebm.arch {e.arch!r} does not fit examples of shape {shape} "
                                  f"(coopflow is for images, mlp for points)")
            if e.arch == "coopflow":
                try:
                    nets["ebm"] = CoopFlowEBM(shape[0], shape[-1], e.channels, e.head_channels, e.head,
                                              e.head_swish)
                except ValueError as err:
                    raise EbmkitError(f"ebm.channels: {err}") from None
            else:
                nets["ebm"] = SwishMLP(shape[0], e.hidden, e.num_layers)
        return nets

    def optim_specs(self) -> dict[str, OptimSpec]:
        t = self.preset.train  # sec. 4.5.2: Adam for both, betas (0.9, 0.999) for the flow, (0.5, 0.5) for the EBM
        specs = {}
        if "flow" in self.nets:
            early = None if t.lr_flow_pretrain is None else (t.pretrain_iterations, t.lr_flow_pretrain)
            specs["flow"] = OptimSpec(t.lr_flow, t.betas_flow, warmup=t.flow_warmup, grad_clip=t.grad_clip,
                                      lr_before=early)
        if "ebm" in self.nets:
            specs["ebm"] = OptimSpec(t.lr_ebm, t.betas_ebm, grad_clip=t.grad_clip_ebm)
        return specs

    def use_data(self, data: Dataset) -> None:
        """The base checks; also records the training set's size, since Eq. 4.14 counts epochs."""
        super().use_data(data)
        self.train_size = len(data)

    def start(self) -> None:
        """train.flow_from: start from the flow (and its EMA copy) of another model file, e.g. a flow
        pre-trained by a mode "flow" run (CoopFlow(Pre), sec. 4.5.2)."""
        source = self.preset.train.flow_from
        if source is None:
            return
        from ebmkit.methods import load_model  # the registry imports this module

        if "flow" not in self.nets:
            raise EbmkitError(f"train.flow_from is set but train.mode {self.preset.train.mode!r} has no flow")
        other, _ = load_model(source, self.device, supported=("coopflow",), command="train.flow_from")
        if "flow" not in other.nets or other.shape != self.shape:
            raise EbmkitError(f"{source} holds no flow for examples of shape {self.shape}")
        self.load_components({k: m.state_dict() for k, m in other.components().items() if k.startswith("flow")}
                             | {k: m.state_dict() for k, m in self.components().items() if not k.startswith("flow")},
                             f"{source} (train.flow_from)")

    # ------------------------------------------------------------------------------ schedule
    def phase(self, step: int) -> str:
        """What training iteration `step` trains: "pretrain" (flow MLE on data), "warmup" (the EBM alone),
        "coop" (Algorithm 3), or the mode's name for modes "flow" and "langevin"."""
        t = self.preset.train
        if t.mode != "coopflow":
            return t.mode
        if step < t.pretrain_iterations:
            return "pretrain"
        return "warmup" if step < t.pretrain_iterations + t.warmup_iterations else "coop"

    def epoch(self, step: int) -> int:
        """Epochs of the training data (at train.batch_size) the Langevin flow has trained by iteration `step`,
        counted from the end of flow pre-training."""
        if self.train_size is None:
            raise EbmkitError("langevin.noise_decay_K counts epochs: the method needs use_data(training set)")
        t = self.preset.train
        return max(step - t.pretrain_iterations, 0) * t.batch_size // self.train_size

    def noise_weight(self, step: int | None) -> float:
        """w of the Langevin step at training iteration `step` (None: sampling): 0 or 1 by the preset, times
        Eq. 4.14 in training if noise_decay_K is set."""
        lg = self.preset.langevin
        if step is None:
            return float(lg.noise_test)
        if not lg.noise:
            return 0.0
        return 1.0 if lg.noise_decay_K is None else noise_decay(self.epoch(step), lg.noise_decay_K)

    # ------------------------------------------------------------------------------ pieces
    def ebm_log_density(self, ebm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(B,) unnormalised log p_theta(x): f(x) (Eq. 4.1), or f(x) + log N(x; 0, I) (Eq. 4.9)."""
        f = ebm(x)
        return f + gaussian_log_density(x) if self.preset.ebm.reference == "gaussian" else f

    def langevin_flow(self, ebm: nn.Module, x_hat: torch.Tensor, step: int | None, steps: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Step 6: `steps` (default T) steps of Eq. 4.2 from x_hat, as coded (implementation notes). In training
        (at iteration `step`) the training step size and noise schedule; sampling (step None) the test ones
        (Table 4.4)."""
        lg = self.preset.langevin
        return langevin(lambda x: self.ebm_log_density(ebm, x), x_hat,
                        step_size=lg.step_size if step is not None else lg.step_size_test,
                        steps=lg.steps if steps is None else steps, noise_weight=self.noise_weight(step),
                        drift_clamp=lg.drift_clamp, clamp=lg.clamp, generator=generator,
                        autocast=self.autocast).x

    def sample_scale(self) -> float:
        """x_hat = scale * g(z): 1, or Flow++'s bound with flow.sample_scale "bound" (the authors' sampler)."""
        f = self.preset.flow
        return f.bound if getattr(f, "sample_scale", "inverse") == "bound" else 1.0

    @torch.no_grad()
    def propose(self, nets: nn.ModuleDict, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Steps 4-5: z ~ N(0, I), x_hat = g_alpha(z). (num, *shape). Mode "langevin": x_hat ~ p_0 of
        Eq. 4.2, N(0, I) or uniform over the clamp box (langevin.start). flow.sample_scale "bound" scales g(z) by
        the bound, as the authors' sampler does."""
        lg = self.preset.langevin
        if "flow" not in nets and lg.start == "uniform":
            low, high = lg.clamp
            return low + (high - low) * torch.rand((num, *self.shape), generator=generator, device=self.device)
        z = torch.randn((num, *self.shape), generator=generator, device=self.device)
        if "flow" not in nets:
            return z
        flow = nets["flow"]
        was_training = flow.training
        flow.eval()  # no dropout in the proposal
        x_hat = flow.inverse(z)
        flow.train(was_training)
        scale = self.sample_scale()
        return x_hat if scale == 1.0 else scale * x_hat

    def flow_nll(self, flow: nn.Module, x: torch.Tensor, **kw) -> torch.Tensor:
        """(B,) -log q_alpha(x) in nats, Eq. 4.5: log q_0(g^{-1}(x)) + log |det d g^{-1}(x) / dx|.
        Runs the flow's forward, through DDP when wrapped, so its gradients are averaged across ranks."""
        z, logdet = flow(x, **kw)
        return -(standard_normal_logprob(z) + logdet)

    def data_nll(self, flow: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) -log q_alpha of training examples in nats: points as they are; 8-bit images dequantised
        (Flow++ variational dequantisation), so the figure bounds -log P(x) of the discrete pixels."""
        if x.dim() == 2:
            return self.flow_nll(flow, x)
        return self.flow_nll(flow, x, dequantize=True, generator=generator)

    @torch.no_grad()
    def initialize_flow(self, x: torch.Tensor) -> None:
        """ActNorm data-dependent initialisation (sec. 4.5.2) on the first training batch, before any update:
        one pass of the data likelihood in eval mode with a seeded dequantisation draw, so it is
        deterministic. The EMA copy starts from the result; the `initialized` buffers travel with
        checkpoints, so a resumed run does not initialise again. Under torchrun rank 0's result wins."""
        flow = self.nets["flow"]
        was_training = flow.training
        flow.eval()
        self.data_nll(flow, x, torch.Generator(self.device).manual_seed(self.preset.train.seed))
        flow.train(was_training)
        if dist.is_initialized():
            for tensor in flow.state_dict().values():
                dist.broadcast(tensor, 0)
        self.ema["flow"].load_state_dict(flow.state_dict())

    def flow_initialized(self) -> bool:
        """Whether every ActNorm of the flow has seen its data-dependent initialisation."""
        return all(bool(m.initialized) for m in self.nets["flow"].modules() if isinstance(m, ActNorm))

    # ------------------------------------------------------------------------------ Algorithm 3
    def train_step(self, batch: Batch, nets: dict[str, nn.Module], step: int = 0) -> tuple[dict, dict]:
        x = batch.x  # (B, *shape) observed examples in model space (step 3)
        dim = x[0].numel()
        if "flow" in self.nets and not self.flow_ready:  # checked once per run, not read back every step
            if not self.flow_initialized():
                self.initialize_flow(x)
            self.flow_ready = True
        phase = self.phase(step)
        if phase in ("pretrain", "flow"):  # MLE of the flow on data (Eq. 4.5 on x_i)
            nll = self.data_nll(nets["flow"], x)
            metrics = {"energy_flow": nll.detach().mean() / dim}  # -log q per dimension, nats
            if x.dim() == 4:
                metrics["flow_bpd"] = nll.detach().mean() / (dim * math.log(2))
            return {"flow": nll.mean()}, metrics

        x_hat = self.propose(self.nets, len(x))                              # steps 4-5
        x_tilde = self.langevin_flow(self.nets["ebm"], x_hat, step)           # step 6, detached
        f_data, f_sample = nets["ebm"](torch.cat([x, x_tilde])).chunk(2)    # (B,) each
        losses = {"ebm": f_sample.mean() - f_data.mean()}                    # step 8, Eq. 2.2
        metrics = {"energy_data": -f_data.detach().mean(), "energy_sample": -f_sample.detach().mean()}
        if phase == "coop":                                                  # step 7, Eq. 4.5 on x_tilde
            nll = self.flow_nll(nets["flow"], x_tilde)
            losses["flow"] = nll.mean()
            # a quantity of its own, not energy_flow (-log q of data): the guard gives each energy its own
            # reference, and the flow fitted to data alone gives the first samples little density
            metrics["energy_flow_sample"] = nll.detach().mean() / dim
        return losses, metrics

    # ------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_levels(self, num: int, generator: torch.Generator | None = None, steps: int | None = None,
                      use_ema: bool = True) -> list[torch.Tensor]:
        """[x_hat, x_tilde] for one batch: the proposals (steps 4-5) and the samples after `steps` (default T)
        test-time Langevin steps (step 6 with step_size_test); mode "flow": [x_hat]."""
        nets = self.ema if use_ema else self.nets
        x_hat = self.propose(nets, num, generator)
        if "ebm" not in nets:
            return [x_hat]
        return [x_hat, self.langevin_flow(nets["ebm"], x_hat, None, steps, generator)]

    # ------------------------------------------------------------------------------ latent-variable tasks
    # CoopFlow as a generator z ~ q_0, x_hat = g_alpha(z), x = F_theta(x_hat) (sec. 4.4.3).
    def generate(self, x_hat: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """F_theta(x_hat): the noiseless T-step Langevin flow from the EMA EBM, read as a residual network
        (sec. 4.4.3), at the training step size and without clamps, as the authors' reconstruction code
        runs it; the identity in mode "flow"."""
        if "ebm" not in self.ema:
            return x_hat
        lg, ebm = self.preset.langevin, self.ema["ebm"]
        return langevin(lambda x: self.ebm_log_density(ebm, x), x_hat, step_size=lg.step_size, steps=lg.steps,
                        noise_weight=0.0, differentiable=differentiable, autocast=self.autocast).x

    def infer(self, x: torch.Tensor, mask: torch.Tensor | None = None, steps: int = 200, lr: float = 0.05,
              generator: torch.Generator | None = None, progress=None) -> "Inference":
        """Reconstruction (sec. 4.4.3): x_hat* = argmin ||M * (x - F(x_hat))||^2 by `steps` steps of gradient
        descent at rate lr from x_hat_0 = g(z), z ~ q_0 (mode "langevin": x_hat_0 = z), then
        z* = g^{-1}(x_hat*). mask (broadcastable to x, 1 = observed) restricts the loss (inpainting).
        With a flow, x_hat stays in the data range [-1, 1] (authors' code). progress(n): n examples' worth done."""
        self.ema.eval()
        m = torch.ones_like(x[:1, :1]) if mask is None else mask.to(x)
        m = m.expand_as(x)
        x_hat, curve = self.propose(self.ema, len(x), generator), []
        for _ in range(steps + 1):
            with torch.enable_grad():
                x_hat = x_hat.detach().requires_grad_(True)
                out = self.generate(x_hat, differentiable=True)
                err = (m * (x - out) ** 2).flatten(1).sum(1)  # (B,)
                (grad,) = torch.autograd.grad(err.sum(), x_hat)
            curve.append(err.detach() / m.flatten(1).sum(1).clamp(min=1))
            if len(curve) > steps:
                break
            x_hat = x_hat.detach() - lr * grad
            if "flow" in self.ema:
                x_hat = x_hat.clamp(-1.0, 1.0)
            if progress is not None:  # counted in examples
                progress(len(x) / steps)
        x_hat = x_hat.detach()
        return Inference(x_hat, out.detach(), self.encode(x_hat), torch.stack(curve, 1))

    @torch.no_grad()
    def encode(self, x_hat: torch.Tensor) -> torch.Tensor:
        """z = g_alpha^{-1}(x_hat / scale) (the flow's forward; scale of sample_scale); x_hat in mode "langevin"."""
        return self.ema["flow"](x_hat / self.sample_scale())[0] if "flow" in self.ema else x_hat

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = F_theta(g_alpha(z)): the flow's inverse, then the Langevin flow of `generate`."""
        x_hat = self.sample_scale() * self.ema["flow"].inverse(z) if "flow" in self.ema else z
        return self.generate(x_hat.detach())

    def batched_infer(self, x: torch.Tensor, mask: torch.Tensor | None = None, batch_size: int = 100,
                      steps: int = 200, lr: float = 0.05, generator: torch.Generator | None = None,
                      progress=None) -> "Inference":
        """`infer` over batches of at most batch_size examples (mask: one per example, or one for all)."""
        parts = []
        for i in range(0, len(x), batch_size):
            part_mask = None if mask is None else mask if len(mask) == 1 else mask[i:i + batch_size]
            parts.append(self.infer(x[i:i + batch_size], part_mask, steps, lr, generator, progress))
        return Inference(*(torch.cat(t) for t in zip(*(astuple(p) for p in parts))))

    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, num: int, generator: torch.Generator | None = None,
                batch_size: int = 100, progress=None, steps: int | None = None, infer_steps: int | None = None,
                lr: float | None = None) -> torch.Tensor:
        """`num` completions F(x_hat*) of each image (N, C, H, W), from `num` different flow initialisations,
        with the loss on the observed pixels (mask 1) only (sec. 4.4.3): `infer_steps` (default 200) steps of
        gradient descent at rate `lr` (default 0.05). Returns (N, num, C, H, W); the observed pixels are
        close to, not equal to, the observation."""
        if steps is not None:
            raise EbmkitError("--steps sets CDRL's Langevin steps per level; for CoopFlow use --infer-steps (and --lr)")
        infer_steps, lr = 200 if infer_steps is None else infer_steps, 0.05 if lr is None else lr
        n = len(images)
        x = images.repeat_interleave(num, 0)
        m = mask.expand(n, *mask.shape[1:]).repeat_interleave(num, 0)
        done = self.batched_infer(x, m, batch_size, steps=infer_steps, lr=lr, generator=generator, progress=progress)
        return done.x.reshape(n, num, *self.shape)

    # ------------------------------------------------------------------------------ pictures
    def log_density(self, x: torch.Tensor, level: int, use_ema: bool = True) -> torch.Tensor:
        """(B,) unnormalised log density of a stage (num_levels): level 0 the EBM (or the flow in mode
        "flow"), level 1 the flow q_alpha (or N(0, I) in mode "langevin")."""
        nets = self.ema if use_ema else self.nets
        with torch.no_grad():
            if level == 0 and "ebm" in nets:
                return self.ebm_log_density(nets["ebm"], x)
            if "flow" in nets:
                return -self.flow_nll(nets["flow"], x)
            return gaussian_log_density(x)

    def noised_levels(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The data beside each stage: CoopFlow adds no noise."""
        return [x0] * self.num_levels

    def preview(self, path: Path, generator: torch.Generator, data: Dataset) -> None:
        if data.kind == "points":
            self.preview_points(self.sample(2000, generator), path)
        else:
            viz.save_grid(self.sample(self.preset.train.num_preview, generator), path)
