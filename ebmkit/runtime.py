"""The process a command runs in: its device, and its rank in a torchrun launch (DDP over
torch.distributed), with the random state of every rank for exact resume."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ebmkit import inputs
from ebmkit.errors import EbmkitError


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_ranks(device: str = "auto") -> Ranks:
    """One process, or one rank of a torchrun launch (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    inputs.device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EbmkitError(f"--device {device}: no CUDA device is available")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise EbmkitError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(device=torch.device(device))
    use_cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    return Ranks(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if use_cuda else "cpu"))


def rng_state(ranks: Ranks) -> dict[str, torch.Tensor]:
    """Every rank's RNG state, stacked by rank (gathered to all ranks)."""
    states = {"cpu": torch.get_rng_state()}
    if ranks.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(ranks.device)
    if ranks.world == 1:
        return {k: v[None] for k, v in states.items()}
    out = {}
    for k, v in states.items():
        v = v.to(ranks.device)
        parts = [torch.empty_like(v) for _ in range(ranks.world)]
        dist.all_gather(parts, v)
        out[k] = torch.stack(parts).cpu()
    return out


def set_rng_state(states: dict[str, torch.Tensor], ranks: Ranks) -> None:
    if states["cpu"].shape[0] != ranks.world:
        raise EbmkitError(f"this run was trained with {states['cpu'].shape[0]} processes; "
                          f"resume it with the same number (got {ranks.world})")
    torch.set_rng_state(states["cpu"][ranks.rank])
    if "cuda" in states and ranks.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"][ranks.rank], ranks.device)
