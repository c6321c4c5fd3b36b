"""The preset schema of NeRF-LEBM (thesis ch. 3): scenes, generator, renderer, latent priors, inference."""

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, model_validator

from ebmkit.presets.base import DataConfig, Loop, PositiveFloat, PositiveInt, PresetBase, Rate, Strict, Unit


class SceneData(DataConfig):
    views: PositiveInt | None = None               # images per object (sec. 3.5.1: 1 for Carla, 50 for ShapeNet); unset: the set's default
    num_objects: PositiveInt | None = None           # training objects (unset: the set's default)
    masked: bool = False                  # incomplete observations: a hidden region per image (sec. 3.5.7)
    distinct_ends: bool = False           # procedural cars whose front and back a view tells apart (unknown poses)

    @model_validator(mode="after")
    def _procedural_only(self):
        if self.distinct_ends and self.name != "scenes":
            raise ValueError(f"distinct_ends shapes the procedural 'scenes', not {self.name!r}")
        return self


class NeRFConfig(Strict):
    """The generator: Fig. 3.1 ("nerf", known poses) or Fig. 3.2 ("film", unknown poses); "film-siren" is the
    authors' code's Fig. 3.2 (pi-GAN's TALLSIREN: depth FiLM-ed sine layers, then depth plain sine layers)."""

    arch: Literal["nerf", "film", "film-siren"] = "nerf"
    width: PositiveInt = 256               # trunk width (sec. 3.5.2.1)
    depth: PositiveInt = 8                 # trunk layers (8 for "nerf", 4 FiLM-ed layers for "film", "film-siren")
    skip: NonNegativeInt = 4               # the input joins again at this layer ("nerf")
    freqs_xyz: NonNegativeInt = 10         # positional encoding (implementation notes)
    freqs_dir: NonNegativeInt = 4
    map_hidden: PositiveInt = 256          # mapping MLPs 128 -> 256 -> 256 -> 256 -> 128
    map_out: PositiveInt = 128


class RenderConfig(Strict):
    """Eq. 3.1 with the camera of the implementation notes."""

    num_samples: PositiveInt = 64          # stratified samples per ray, linear in depth
    rays_per_image: PositiveInt = 800      # random rays per training image (authors: N_rand 1600 for 2 images)
    white_background: bool = True
    elevation: tuple[float, float] = (10.0, 40.0)  # degrees: generation draws poses uniformly in this band
    fov_deg: PositiveFloat = 30.0          # the camera of the implementation notes (SRN cars: about 52)
    radius: PositiveFloat = 10.0           # camera distance to the object's centre (SRN cars: 1.3)
    near: PositiveFloat = 7.5
    far: PositiveFloat = 12.5
    quadrature: Literal["bins", "nerf"] = "bins"  # "nerf": the authors' (nerf-pytorch's) depths and deltas, for
                                          # converted models (ebmkit.nerf.render)
    pixel_centres: bool = True             # false: rays through the pixels' corners, as the authors' get_rays
    importance_samples: NonNegativeInt = 0  # > 0: a fine network in the generator, rendered at these many more depths
                                          # per ray drawn from the coarse render (NeRF's hierarchical sampling, the
                                          # authors' N_importance; not in the thesis); random in training, fixed
                                          # quantiles otherwise. Training fits both passes
    image_pass: Literal["fine", "coarse"] = "fine"  # the pass pictures show with importance_samples ("coarse": the
                                          # authors' render_path, their samples and FID)
    camera_up: Literal["world", "orbit"] = "world"  # "orbit": past a pole the camera turns upside down, as the
                                          # authors' pose matrices (ebmkit.nerf.camera.pose_rays)


class LatentPrior(Strict):
    """One latent EBM prior (Table 3.1, 3.2); "gaussian" is the baseline of Table 3.4 (no network)."""

    kind: Literal["ebm", "gaussian"] = "ebm"
    size: Literal["small", "large"] = "large"  # Table 3.1: 2 or 4 swish layers
    hidden: PositiveInt = 256                   # C of Table 3.1 (Table 3.2)


class NeRFLatents(Strict):
    """z_s and z_a with EBM priors tilting a reference q_0 (Eq. 3.4, 3.5), sampled by Eq. 3.10-3.13."""

    dim: PositiveInt = 128                      # Table 3.2
    reference: Literal["gaussian", "uniform"] = "gaussian"  # q_0 (Table 3.3)
    sigma: PositiveFloat = 1.0                  # of q_0 = N(0, sigma^2 I); with "uniform" only the start
    shape: LatentPrior = LatentPrior()
    appearance: LatentPrior = LatentPrior()
    prior_steps: NonNegativeInt = 60            # K- (Table 3.3)
    prior_step_size: PositiveFloat = 0.5        # delta- (Table 3.3)
    prior_noise: Annotated[float, Field(ge=0)] = 1.0  # MCMC noise weight (Table 3.3)
    prior_samples: PositiveInt = 50             # prior chains per update (authors' code)


class NeRFInference(Strict):
    """Posterior inference: "mcmc" (Algorithm 1, chains from q_0 every iteration), "persistent" (one chain
    per training object carried across iterations, updated by Adam: the ShapeNet setting of Table 3.3),
    "amortized" (Algorithm 2, an encoder)."""

    kind: Literal["mcmc", "persistent", "amortized"] = "mcmc"
    steps: NonNegativeInt = 60                  # K+ (Table 3.3)
    step_size: PositiveFloat = 0.1              # delta+ (Table 3.3; the Adam rate with "persistent")
    noise: bool = False                         # sec. 3.5.3: no noise in posterior Langevin
    sigma_eps: PositiveFloat = 0.05             # observation noise of Eq. 3.3 (sec. 3.5.3)
    poses: Literal["known", "unknown"] = "known"  # unknown: vMF posteriors on the angles (sec. 3.4.4)
    choose_ends: bool = False                   # unknown poses: the azimuth's vMF covers half a turn, the elevation's
                                                # render.elevation; each view's end is the likelier (NeRFLEBM.choose_ends)
    end_balance: NonNegativeFloat = 0.02        # the rate that keeps half the views turned (NeRFLEBM.choose_ends); 0: off
    likelihood_scale: PositiveFloat = 1.0       # multiplies log p(I | z, xi), Eq. 3.3 summed over the sampled rays;
                                                # the authors' code uses the mean: 1 / (3 x batch size) of the sum
    test_steps: PositiveInt = 600               # MCMC steps to infer an unseen object (sec. 3.5.6)
    encoder_width: PositiveInt = 64             # amortized: the ResNet34's stages are this x (1, 2, 4, 8) wide; 64: ResNet34
    heads: Literal["mlp", "linear", "posenet"] = "mlp"  # amortized: q(z | I)'s heads; "mlp": two layers each on
                                                # the pooled features (mean, log std); "linear": the authors' code, one
                                                # Linear each for the means and log-variances on the ResNet's 1000-way
                                                # classifier output; "posenet": their unknown-pose code, on that output
                                                # (ebmkit.nets.posenet)
    encoder_input: Literal["symmetric", "imagenet"] = "symmetric"  # amortized: the encoder reads 2 I - 1, or I
                                                # normalised by ImageNet's mean and std (the authors' code)


class NeRFTrain(Loop):
    """batch_size counts objects per iteration (Table 3.3)."""

    views: PositiveInt = 1                      # views of each object per iteration, sharing its latents (Table 3.3)
    lr_gen: Rate = 1e-4                         # eta_theta (Table 3.3)
    lr_prior: Rate = 2e-5                       # eta_alpha
    lr_encoder: Rate = 3e-5                     # eta_phi: feature extractor and pose head (sec. 3.5.2.3)
    lr_heads: Rate = 5e-6                       # the z_a and z_s heads (sec. 3.5.2.3)
    betas: tuple[Unit, Unit] = (0.9, 0.999)     # sec. 3.5.3
    prior_start: NonNegativeInt = 0             # EBM priors update from this iteration on (authors: 2000)
    ramp: NonNegativeInt = 0                    # K+ and K- grow linearly from 0 over this many iterations after prior_start
    grad_clip: PositiveFloat | None = None
    num_preview: PositiveInt = 16               # renders are slow


class NeRFLEBMPreset(PresetBase):
    method: Literal["nerf_lebm"]
    data: SceneData
    generator: NeRFConfig = NeRFConfig()
    render: RenderConfig = RenderConfig()
    latents: NeRFLatents = NeRFLatents()
    inference: NeRFInference = NeRFInference()
    train: NeRFTrain

    @model_validator(mode="after")
    def _consistent(self):
        if self.inference.poses == "unknown" and self.inference.kind != "amortized":
            raise ValueError("inference.poses = 'unknown' needs inference.kind = 'amortized' (sec. 3.4.4)")
        if self.inference.choose_ends and self.inference.poses != "unknown":
            raise ValueError("inference.choose_ends chooses the ends of inferred poses: set inference.poses = 'unknown'")
        if self.generator.arch == "nerf" and self.generator.skip >= self.generator.depth:
            raise ValueError(f"generator.skip {self.generator.skip} must be below generator.depth {self.generator.depth}")
        self._hierarchical_sampling()
        self._encoder()
        return self

    def _hierarchical_sampling(self):
        r = self.render
        if r.importance_samples and self.generator.arch != "nerf":
            raise ValueError("render.importance_samples adds a fine network to generator.arch = 'nerf' only")
        if r.importance_samples and r.num_samples < 3:
            raise ValueError("render.importance_samples draws from the coarse weights between the first and last "
                             "samples: set render.num_samples >= 3")
        if r.image_pass == "coarse" and not r.importance_samples:
            raise ValueError("render.image_pass = 'coarse' picks one of two passes: set render.importance_samples")

    def _encoder(self):
        inf = self.inference
        changed = [k for k in ("encoder_width", "heads", "encoder_input")
                   if getattr(inf, k) != NeRFInference.model_fields[k].default]
        if changed and inf.kind != "amortized":
            raise ValueError(f"inference.{changed[0]} shapes the encoder of inference.kind = 'amortized'")
        if inf.heads == "linear" and inf.poses == "unknown":
            raise ValueError("inference.heads = 'linear' has no pose head: it needs inference.poses = 'known'")
        if inf.heads == "posenet" and (inf.poses != "unknown" or inf.choose_ends):
            raise ValueError("inference.heads = 'posenet' infers unknown poses without choose_ends: set "
                             "inference.poses = 'unknown', inference.choose_ends = false")
