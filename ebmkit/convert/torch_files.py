"""Reading the authors' torch.save checkpoints, safely, and the renames every converter shares.

This is the only module of ebmkit that reads a pickle-based format. It reads with
torch.load(weights_only=True) alone, which rebuilds only tensors and plain containers; a file that needs
the full unpickler (arbitrary objects, so arbitrary code) is refused.
"""

import pickle
import re
import zipfile
from pathlib import Path

import torch

from ebmkit.errors import EbmkitError

State = dict[str, torch.Tensor]

# Old-style torch.nn.utils.spectral_norm (the authors' code) against torch.nn.utils.parametrizations.spectral_norm
# (ebmkit): the same power-iteration vectors, stored under other names.
SPECTRAL_NORM = {"weight_orig": "parametrizations.weight.original", "weight_u": "parametrizations.weight.0._u",
                 "weight_v": "parametrizations.weight.0._v"}
SN_BUFFERS = ("weight_u", "weight_v")


def read_checkpoint(path: str | Path) -> dict:
    """The top-level dict of a torch.save file, loaded with weights_only=True onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise EbmkitError(f"{path}: no such file (give the checkpoint the authors released, e.g. Cifar_10_best.pth.tar)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise EbmkitError(f"{path}: refused, loading it needs a full unpickler, which could run code (it holds "
                              f"{found.group(1)}, beyond tensors and plain containers); ebmkit reads checkpoints "
                              f"with weights_only=True only") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
        raise EbmkitError(f"{path}: not a torch checkpoint that loads with weights_only=True (corrupt, not a "
                          f"checkpoint, or one that needs a full unpickler, which ebmkit refuses)"
                          + (f": {detail.group(1).strip()[:200]}" if detail else "")) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise EbmkitError(f"{path}: not a readable torch checkpoint (corrupt or truncated?): {first}") from None
    if not isinstance(obj, dict):
        raise EbmkitError(f"{path}: holds a {type(obj).__name__}, not the dict of a training checkpoint")
    return obj


def top_level(checkpoint: dict, known: set[str], training: tuple[str, ...], path: str | Path, strict: bool,
              what: str) -> list[str]:
    """Check the checkpoint's top-level entries: one that is neither known nor `training` (optimiser and
    scheduler states, not converted) is an error under `strict`. Returns the notes saying what was left out."""
    unknown = [k for k in checkpoint if k not in known and k not in training]
    if unknown and strict:
        raise EbmkitError(f"{path}: unexpected entry '{unknown[0]}' for a {what} checkpoint; wrong --from? "
                          f"(--no-strict skips it)")
    present = [k for k in training if k in checkpoint]
    notes = [f"not converted (training state): {', '.join(present)}"] if present else []
    return notes + [f"skipped: entry '{k}'" for k in unknown]


def entry(checkpoint: dict, key: str, path: str | Path, kind: type = dict):
    """checkpoint[key], which must exist and be a `kind`."""
    if key not in checkpoint:
        raise EbmkitError(f"{path}: no '{key}' entry (it holds {', '.join(map(str, checkpoint))}); "
                          f"is it a checkpoint of the model you named with --from?")
    value = checkpoint[key]
    if not isinstance(value, kind):
        raise EbmkitError(f"{path}: '{key}' is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def state_dict(checkpoint: dict, key: str, path: str | Path) -> State:
    """A network's state dict, its DDP / DataParallel 'module.' prefix removed."""
    state = entry(checkpoint, key, path)
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise EbmkitError(f"{path}: '{key}' is not a state dict (entry {bad!r})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def with_ema(live: State, ema: dict, is_buffer, key: str, path: str | Path) -> State:
    """The EMA copy of a network: torch_ema 0.3 keeps `shadow_params` as a list in the order of the network's
    parameters() (buffers such as spectral norm's power-iteration vectors are not averaged). They are paired with
    the parameter names of the live state dict (a state dict lists each module's parameters before its buffers,
    in the order parameters() walks them); buffers come from the live network, as the authors' sampler uses them.
    The pairing is checked: same count, same shape at every position."""
    shadow = ema.get("shadow_params")
    if not isinstance(shadow, list) or not all(isinstance(t, torch.Tensor) for t in shadow):
        raise EbmkitError(f"{path}: '{key}' has no torch_ema 'shadow_params' list")
    names = [k for k in live if not is_buffer(k)]
    if len(names) != len(shadow):
        raise EbmkitError(f"{path}: '{key}' averages {len(shadow)} parameters, the network has {len(names)}")
    out = dict(live)
    for name, tensor in zip(names, shadow):
        if tensor.shape != live[name].shape:
            raise EbmkitError(f"{path}: '{key}' pairs a tensor of shape {tuple(tensor.shape)} with parameter "
                              f"'{name}' of shape {tuple(live[name].shape)}")
        out[name] = tensor
    return out


def rename(state: State, mapping: dict[str, str], path: str | Path, what: str, strict: bool,
           leaves: dict[str, str] | None = None) -> tuple[State, list[str]]:
    """`state` under ebmkit's names: mapping sends a source module prefix to ebmkit's ('temb_map1' ->
    'temb.dense1'); spectral norm's names, and `leaves` ('g' -> 'gain'), are renamed within. Returns the state
    and the source keys that no mapping covers (an error under `strict`)."""
    leaves = SPECTRAL_NORM | (leaves or {})
    out, unmapped = {}, []
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in mapping:
            unmapped.append(key)
            continue
        out[f"{mapping[prefix]}.{leaves.get(leaf, leaf)}"] = value
    if unmapped and strict:
        raise EbmkitError(f"{path}: {what} key '{unmapped[0]}' (and {len(unmapped) - 1} more) maps to no ebmkit "
                          f"tensor; wrong --from or --preset? (--no-strict skips such keys and lists them)")
    return out, unmapped


def load_into(module: torch.nn.Module, state: State, path: str | Path, what: str) -> None:
    """Copy `state` into `module`; every tensor must be there, with its shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise EbmkitError(f"{path}: {what} lacks '{missing[0]}' (and {len(missing) - 1} more) that the preset's "
                          f"network needs; wrong --preset?")
    extra = [k for k in state if k not in own]
    if extra:
        raise EbmkitError(f"{path}: {what} maps to '{extra[0]}' (and {len(extra) - 1} more), which the preset's "
                          f"network does not have; wrong --preset?")
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise EbmkitError(f"{path}: {what} '{key}' has shape {tuple(value.shape)}, the preset's network "
                              f"{tuple(own[key].shape)}; wrong --preset?")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise EbmkitError(f"{path}: {what} '{key}' holds NaN or inf values")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
