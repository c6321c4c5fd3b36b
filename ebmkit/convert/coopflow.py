"""AlvinZhuyx/CoopFlow checkpoints as ebmkit CoopFlow models: those of main_cifar.py, main_svhn.py, main_celeba.py
and their CoopFlow(Pre) variants (e.g. cifar10.pth.tar; preset coopflow-cifar10-authors).

The file is a torch.save dict: `ebm_net` (models/ebm/ebm.py EBM_res), `flow_net` (models/flowplusplus/ Flow++),
`epoch`, and in some scripts `ebm_optimizer` / `flow_optimizer` (training state: not converted, listed) and `fid`.
Both networks were DataParallel-wrapped ('module.' keys). CoopFlow keeps no EMA copies: the live weights are also
written as the EMA copy that ebmkit samples with.

EBM_res's Sequential `f` (stem conv, swish, one `block` per resolution, head conv) maps onto CoopFlowEBM with
ebm.head = "authors" (4x4 head conv) and ebm.head_swish = false (the raw head outputs are summed). The Flow++ maps
onto FlowPP module by module, with these exact re-parametrisations:
- ActNorm stores `mean` and `inv_std` (1, C, 1, 1): ebmkit's loc = mean, log_scale = log(inv_std);
- weight norm is the old torch API (weight_g / weight_v) where ebmkit uses the parametrization (original0 / 1);
- the coupling's `rescale` is a weight-normed per-channel scale: ebmkit's plain rescale = g v / |v|;
- the attention's in_proj rows are [k, v, q], ebmkit's qkv rows [q, k, v];
- the dequantizer's context stem is a plain conv of (x + 1) / 2 - 0.5 = x / 2: ebmkit's weight-normed stem on x
  gets the weight W / 2.
The logit pre-processing's bound is a buffer (`bounds`), checked against flow.bound. Log-determinants differ by
constants only: their forward differentiates with respect to (x + 1) / 2 and, dequantising, to w / 256.

The pre-trained Flow++ files that CoopFlow(Pre) starts from (flow_ckpt/, written by the Flow++ training code:
`net`, `test_loss`, `epoch`) become a model of the flow alone (train.mode "flow"), e.g. for train.flow_from.
"""

from pathlib import Path

import torch

from ebmkit.convert.torch_files import State, load_into, read_checkpoint, rename, state_dict, top_level
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method
from ebmkit.nets.coopflow_ebm import CoopFlowEBM
from ebmkit.nets.flowpp import FlowPP
from ebmkit.presets import load_preset

NETWORKS = {"ebm": "ebm_net", "flow": "flow_net"}
PRESET = "coopflow-cifar10-authors"
TRAINING_STATE = ("ebm_optimizer", "flow_optimizer")
OTHER = ("epoch", "fid", "test_loss")  # plain numbers
FLOW_ALONE = {"flow": "net"}  # a pre-trained Flow++ file
WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def ebm_mapping(ebm: CoopFlowEBM) -> dict[str, str]:
    """EBM_res's `f`: f.0 the stem conv, f.1 its swish, f.2 ... one block per resolution, then the head conv."""
    mapping = {"f.0": "stem", f"f.{2 + len(ebm.blocks)}": "head"}
    for i in range(len(ebm.blocks)):
        mapping |= {f"f.{2 + i}.conv1": f"blocks.{i}.conv1", f"f.{2 + i}.conv2": f"blocks.{i}.conv2",
                    f"f.{2 + i}.res": f"blocks.{i}.shortcut"}
    return mapping


def _coupling(theirs: str, ours: str, num_blocks: int, aux: bool) -> dict[str, str]:
    """models/flowplusplus/nn.py NN (inside a Coupling) -> MixLogCDFCoupling."""
    mapping = {f"{theirs}.nn.in_conv.conv": f"{ours}.stem", f"{theirs}.nn.out_conv.conv": f"{ours}.out",
               f"{theirs}.nn": ours}  # the rescale, combined from its weight norm (see _prepared)
    for j in range(num_blocks):
        a, b = f"{theirs}.nn.mid_convs.{j}", f"{ours}.blocks.{j}"
        mapping |= {f"{a}.conv.conv.conv": f"{b}.conv.conv", f"{a}.conv.gate.conv": f"{b}.conv.gate",
                    f"{a}.norm_1": f"{b}.norm_conv", f"{a}.attn.in_proj": f"{b}.attn.qkv",
                    f"{a}.attn.gate": f"{b}.attn.gate", f"{a}.norm_2": f"{b}.norm_attn"}
        if aux:
            mapping[f"{a}.conv.aux_conv.conv"] = f"{b}.conv.aux_conv"
    return mapping


def _steps(theirs: str, ours: str, num_steps: int, num_blocks: int, aux: bool = False) -> dict[str, str]:
    """A ModuleList of [ActNorm, InvConv, Coupling, Flip] * num_steps -> FlowSteps (norm, mix, coupling; the Flip
    is FlowStep's swap of the halves)."""
    mapping = {}
    for i in range(num_steps):
        mapping |= {f"{theirs}.{4 * i}": f"{ours}.{i}.norm", f"{theirs}.{4 * i + 1}": f"{ours}.{i}.mix"}
        mapping |= _coupling(f"{theirs}.{4 * i + 2}", f"{ours}.{i}.coupling", num_blocks, aux)
    return mapping


def flow_mapping(flow: FlowPP) -> dict[str, str]:
    """FlowPlusPlus -> FlowPP: `flows` (a _FlowStep, its `next` the following scale) holds per scale the
    channel-wise steps (`channels`) and the checkerboard steps (`checkers`); `dequant_flows` the dequantizer."""
    mapping, theirs = {}, "flows"
    for i, scale in enumerate(flow.scales):
        for source, name, steps in (("channels", "channelwise", scale.channelwise),
                                    ("checkers", "checkerboard", scale.checkerboard)):
            if len(steps):
                num_blocks = len(steps[0].coupling.blocks)
                mapping |= _steps(f"{theirs}.{source}", f"scales.{i}.{name}", len(steps), num_blocks)
        theirs += ".next"
    if flow.dequantizer is not None:
        deq = flow.dequantizer
        mapping["dequant_flows.aux_conv.0"] = "dequantizer.stem"
        for j in range(len(deq.context)):
            mapping |= {f"dequant_flows.aux_conv.{j + 1}.conv.conv": f"dequantizer.context.{j}.conv",
                        f"dequant_flows.aux_conv.{j + 1}.gate.conv": f"dequantizer.context.{j}.gate"}
        mapping |= _steps("dequant_flows.flows", "dequantizer.steps", len(deq.steps),
                          len(deq.steps[0].coupling.blocks), aux=True)
    return mapping


def _prepared(state: State, path: Path, bound: float) -> State:
    """The flow's tensors re-parametrised as ebmkit's (see the module docstring), still under the source's names."""
    state = dict(state)
    bounds = state.pop("bounds", None)
    if bounds is not None and (bounds.numel() != 1 or abs(float(bounds) - bound) > 1e-6):
        raise EbmkitError(f"{path}: the flow's logit bound is {bounds.flatten().tolist()}, the preset's flow.bound "
                          f"{bound}; wrong --preset?")
    for key in [k for k in state if k.endswith(".nn.rescale.weight_g")]:
        stem = key.removesuffix(".weight_g")
        g, v = state.pop(key), state.pop(f"{stem}.weight_v", None)
        if v is None:
            raise EbmkitError(f"{path}: the flow has '{key}' without its '{stem}.weight_v'")
        state[stem] = torch._weight_norm(v, g, 0)  # g v / |v| per channel: (C, 1, 1)
    for key in [k for k in state if k.endswith(".inv_std")]:
        stem, inv_std = key.removesuffix(".inv_std"), state.pop(key)
        if not (inv_std > 0).all():
            raise EbmkitError(f"{path}: the flow's ActNorm '{stem}' has a non-positive inv_std (never initialised?)")
        state[f"{stem}.log_scale"] = inv_std.log().flatten()
        if f"{stem}.mean" in state:
            state[f"{stem}.loc"] = state.pop(f"{stem}.mean").flatten()
        if f"{stem}.is_initialized" in state:
            state[f"{stem}.initialized"] = state.pop(f"{stem}.is_initialized").flatten()[0] > 0
    for key in [k for k in state if k.endswith(".attn.in_proj.weight_g") or k.endswith(".attn.in_proj.weight_v")]:
        k_, v_, q_ = state[key].chunk(3, dim=0)  # rows [k, v, q] -> [q, k, v]
        state[key] = torch.cat([q_, k_, v_])
    weight = state.pop("dequant_flows.aux_conv.0.weight", None)
    if weight is not None:  # conv(x / 2) = conv_{W / 2}(x), as a weight-normed conv
        state["dequant_flows.aux_conv.0.weight_v"] = weight / 2
        state["dequant_flows.aux_conv.0.weight_g"] = (weight / 2).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return state


def convert(path: str | Path, preset_name: str | None, overrides: list[str], ema: bool,
            strict: bool) -> tuple[Method, int, list[str]]:
    """The CoopFlow model of the preset (default: coopflow-cifar10-authors) holding the checkpoint's weights; its step
    (0: the file counts epochs only); and notes on what was not converted. CoopFlow keeps no EMA, so `ema` changes
    nothing: the live weights are written to both copies."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    networks = FLOW_ALONE if "net" in checkpoint and "flow_net" not in checkpoint else NETWORKS
    notes = top_level(checkpoint, set(networks.values()) | set(OTHER), TRAINING_STATE, path, strict, "CoopFlow")
    epoch = checkpoint.get("epoch")
    notes.append("CoopFlow checkpoints hold no EMA weights: the live weights are written as the EMA copy too"
                 + (f"; the file ends epoch {epoch} (step set to 0)" if isinstance(epoch, int) else ""))
    live = {name: state_dict(checkpoint, key, path) for name, key in networks.items()}
    mode = "coopflow" if "ebm" in live else "flow"
    if mode == "flow":
        notes.append("a pre-trained Flow++ alone: written as a model of the flow alone (train.mode 'flow')")
    preset = load_preset(preset_name or PRESET, overrides)
    if preset.method != "coopflow":
        raise EbmkitError(f"--preset {preset.name!r} is a {preset.method} preset; --from coopflow needs a coopflow one")
    if preset.train.mode != mode:  # the same networks, trained as the file's were
        preset = load_preset(preset_name or PRESET, [f'train.mode="{mode}"', *overrides])
    if preset.train.mode != mode or preset.flow.arch != "flowpp" or preset.ebm.arch != "coopflow":
        raise EbmkitError(f"--preset {preset.name!r} is not an image CoopFlow preset (train.mode '{mode}', "
                          f"flow.arch 'flowpp', ebm.arch 'coopflow'); --from coopflow needs one")
    stem = live["ebm"].get("f.0.weight") if "ebm" in live else torch.empty(0, 3, 1, 1)  # the authors' sets are RGB
    if stem is None or stem.dim() != 4:
        raise EbmkitError(f"{path}: 'ebm_net' has no stem convolution 'module.f.0'; not a CoopFlow EBM")
    size = preset.data.image_size
    method = build_method(preset, (stem.shape[1], size, size))
    skipped: list[str] = []
    for name, key in networks.items():
        net, what = method.nets[name], "the EBM's" if name == "ebm" else "the flow's"
        if name == "ebm":
            state, mapping = live[name], ebm_mapping(net)
        else:
            state, mapping = _prepared(live[name], path, preset.flow.bound), flow_mapping(net)
        out, unmapped = rename(state, mapping, path, what, strict, leaves=WEIGHT_NORM)
        skipped += [f"skipped: {name}: {k}" for k in unmapped]
        label = "the EBM" if name == "ebm" else "the flow"
        load_into(net, out, path, label)
        load_into(method.ema[name], out, path, f"{label}'s EMA copy")
    return method, 0, notes + skipped
