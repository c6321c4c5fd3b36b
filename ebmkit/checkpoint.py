"""safetensors checkpoints: never pickle, always atomic.

A model file holds every network of a method under a component prefix (`ebm.`, `ebm_ema.`, `init.`,
...) and, in its metadata, the ebmkit version, the method, the step and the validated preset as
JSON, so the file alone is enough to sample. A training-state file beside it holds what an exact
resume needs (optimisers, schedules, RNG and data order) as tensors plus a JSON skeleton.
"""

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ebmkit import __version__
from ebmkit.errors import EbmkitError

FORMAT = "ebmkit-1"
UMASK = os.umask(0o022)
os.umask(UMASK)  # reading the process's umask means setting it: put it back


def atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str | Path,
                commit: bool = True) -> Path:
    """Write to a temporary file in the same folder and flush it to disk; then rename it over `path`, or
    with commit=False leave that to the caller (os.replace) and return the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~UMASK)  # safetensors creates files readable by their owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        code = re.search(r"os error (\d+)", str(e))  # safetensors reports a failed write as text
        if code and not isinstance(e, OSError):
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None
        raise
    if not commit:
        return tmp
    os.replace(tmp, path)
    return path


def read_safetensors(path: str | Path, what: str = "model file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of an ebmkit safetensors file, or a one-line EbmkitError."""
    metadata = read_metadata(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for corrupt or truncated files
        raise EbmkitError(f"{what} {path} is not a readable safetensors file (corrupt or truncated?): {e}") from None
    return tensors, metadata


def read_metadata(path: str | Path, what: str = "model file") -> dict[str, str]:
    """The metadata of an ebmkit safetensors file, without reading its tensors."""
    if not Path(path).is_file():
        raise EbmkitError(f"{what} {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:
        raise EbmkitError(f"{what} {path} is not a readable safetensors file (corrupt or truncated?): {e}") from None
    if metadata.get("format") != FORMAT:
        raise EbmkitError(f"{path} is not an ebmkit {what} (no '{FORMAT}' metadata)")
    return metadata


# ---------------------------------------------------------------------------- model files
def save_model(path: str | Path, method: str, step: int, preset_json: str, components: dict[str, torch.nn.Module],
               commit: bool = True, status: str | None = None) -> Path:
    """`status`: a note kept in the metadata (e.g. that the run diverged after this step)."""
    tensors = {f"{name}.{k}": v for name, module in components.items() for k, v in module.state_dict().items()}
    metadata = {"format": FORMAT, "ebmkit_version": __version__, "method": method, "step": str(step),
                "preset": preset_json, **({"status": status} if status else {})}
    return atomic_save(tensors, metadata, path, commit)


def split_components(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{'ebm.w': t, 'init.b': u} -> {'ebm': {'w': t}, 'init': {'b': u}}."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        component, _, rest = key.partition(".")
        out.setdefault(component, {})[rest] = value
    return out


# ---------------------------------------------------------------------------- training state
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "s") -> Any:
    """Replace every tensor in a nested dict/list by {'__tensor__': key}, collecting them in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        flat = {str(k): flatten_state(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        # Optimiser states are keyed by parameter index: keep int keys int through JSON.
        return {"__intkeys__": flat} if obj and all(isinstance(k, int) for k in obj) else flat
    if isinstance(obj, (list, tuple)):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__intkeys__"}:
            return {int(k): unflatten_state(v, tensors) for k, v in obj["__intkeys__"].items()}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def save_state(path: str | Path, state: dict, commit: bool = True) -> Path:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_state(state, tensors)
    return atomic_save(tensors, {"format": FORMAT, "ebmkit_version": __version__, "state": json.dumps(skeleton)},
                       path, commit)


def load_state(path: str | Path) -> dict:
    tensors, metadata = read_safetensors(path, what="training-state file")
    return unflatten_state(json.loads(metadata["state"]), tensors)
