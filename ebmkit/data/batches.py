"""Deterministic, resumable mini-batch indices, sharded over ranks."""

import torch

from ebmkit.errors import EbmkitError


class ShardedBatches:
    """Endless, deterministic mini-batches of dataset indices for one rank of `world` ranks.

    Epoch e uses the permutation of torch.Generator().manual_seed(seed * 1_000_003 + e); rank r takes
    perm[r::world], cut to n // world indices so all ranks see the same number of batches; each rank
    yields `batch_size` indices at a time (the incomplete tail of an epoch is dropped). State is
    (epoch, position) so a resumed run continues exactly.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise EbmkitError(f"rank {rank} is outside 0..{world - 1}")
        if batch_size < 1 or n // world < batch_size:
            raise EbmkitError(
                f"data set of {n} examples is smaller than one batch of {batch_size} per rank ({world} ranks)"
            )
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.pos = 0, 0
        self._shard_epoch, self._shard = -1, torch.empty(0, dtype=torch.long)

    def _shard_of(self, epoch: int) -> torch.Tensor:
        if epoch != self._shard_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g)
            self._shard_epoch, self._shard = epoch, perm[self.rank :: self.world][: self.n // self.world]
        return self._shard

    def next(self) -> torch.Tensor:
        """int64 (batch_size,) indices of the next batch."""
        if self.pos + self.batch_size > self.n // self.world:
            self.epoch, self.pos = self.epoch + 1, 0
        batch = self._shard_of(self.epoch)[self.pos : self.pos + self.batch_size].clone()
        self.pos += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
