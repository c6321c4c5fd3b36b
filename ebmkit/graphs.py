"""CUDA graphs for fixed-shape sampling work (a level's proposal + K-step Langevin chain).

A chain launches a few dozen small kernels per step; on a fast GPU the launches, not the arithmetic,
bound small batches. Captured once per shape, a chain replays as one graph launch.

`GraphCache.run(key, fn, inputs, generator)` calls `fn(*inputs)`: the first time for a key it captures
fn on private copies of `inputs` (after two warm-up runs on a side stream, with the random state put
back afterwards, so warm-up consumes no randomness), and every time it copies `inputs` into those
copies and replays. So fn must read every tensor that changes between calls from its arguments and
draw its randomness from `generator` (or torch's default CUDA generator). If capture fails, the key
runs eagerly from then on and the reason is logged (once per key).

`emulate=True` runs the same bookkeeping on any device without CUDA: "capture" keeps fn and its input
copies, "replay" calls that first fn on the copies. Tests use it to check that a function obeys the
rules above (a stale tensor from the first call shows up as a wrong result).
"""

import logging
from collections.abc import Callable

import torch

Tensor = torch.Tensor
log = logging.getLogger("ebmkit")


class GraphCache:
    def __init__(self, emulate: bool = False):
        self.emulate = emulate
        # key -> (replay, static inputs, fn), or None: run eagerly. Keeping fn (and through it the
        # generator) alive means a key holding id(generator) cannot be reused by another generator.
        self.entries: dict = {}

    def run(self, key, fn: Callable[..., Tensor], inputs: tuple[Tensor, ...],
            generator: torch.Generator | None = None) -> Tensor:
        if key not in self.entries:
            self.entries[key] = self._capture(fn, inputs, generator)
        entry = self.entries[key]
        if entry is None:
            return fn(*inputs)
        replay, static_in, _ = entry
        for s, x in zip(static_in, inputs):
            s.copy_(x)
        return replay().clone()

    def _capture(self, fn, inputs, generator):
        static_in = tuple(x.clone() for x in inputs)
        if self.emulate:
            return (lambda: fn(*static_in)), static_in, fn
        try:
            state = _rng_state(generator)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # let autograd, cuDNN and Triton allocate and compile outside the graph
                    fn(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            _set_rng_state(generator, state)
            graph = torch.cuda.CUDAGraph()
            if generator is not None:
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph):
                static_out = fn(*static_in)
        except Exception as e:  # noqa: BLE001 - any capture failure falls back to eager execution
            log.warning("CUDA graph capture failed, sampling eagerly: %s", str(e).splitlines()[0] if str(e) else e)
            return None
        return (lambda: (graph.replay(), static_out)[1]), static_in, fn


def _rng_state(generator: torch.Generator | None) -> Tensor:
    return generator.get_state() if generator is not None else torch.cuda.get_rng_state()


def _set_rng_state(generator: torch.Generator | None, state: Tensor) -> None:
    if generator is not None:
        generator.set_state(state)
    else:
        torch.cuda.set_rng_state(state)
