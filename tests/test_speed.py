"""The preset's [speed] options (CUDA graphs, bf16 autocast, channels-last) leave results unchanged
beyond float tolerance. Graph bookkeeping is checked on CPU with GraphCache(emulate=True), which
replays the first call's function on copied inputs exactly as a captured graph would."""

import pytest
import torch

from ebmkit.errors import EbmkitError
from ebmkit.graphs import GraphCache
from ebmkit.langevin import langevin
from ebmkit.methods import build_method, load_model, save_model
from ebmkit.nets import EBMResNet
from ebmkit.presets import load_preset

SMALL = ["ebm.channels=[8, 16]", "init.base_channels=8", "init.channel_mult=[1, 2]", "sampler.steps=3"]


def shapes_model(extra=(), device="cpu"):
    torch.manual_seed(0)
    return build_method(load_preset("cdrl-shapes-cond", SMALL + list(extra)), (3, 16, 16), device)


def draw(method, seed, classes, **kw):
    g = seed if isinstance(seed, torch.Generator) else torch.Generator(method.device).manual_seed(seed)
    return method.sample_levels(len(classes), g, labels=method.class_labels(classes), **kw)


def test_preset_speed_defaults_and_cpu_behaviour():
    m = shapes_model()
    assert m.preset.speed.cuda_graphs and m.preset.speed.channels_last and m.preset.speed.autocast == "none"
    assert m.graphs is None and m.memory_format == torch.contiguous_format and m.autocast is None  # CPU
    assert shapes_model(["speed.autocast=bf16"]).autocast == torch.bfloat16


def test_graph_cache_replays_with_new_inputs():
    cache = GraphCache(emulate=True)
    calls = []

    def fn(x, y):
        calls.append(1)
        return x * 2 + y

    a = cache.run("k", fn, (torch.ones(3), torch.zeros(3)))
    b = cache.run("k", lambda x, y: x - y, (torch.full((3,), 5.0), torch.ones(3)))  # the first fn replays
    assert torch.equal(a, torch.full((3,), 2.0)) and torch.equal(b, torch.full((3,), 11.0))
    b.add_(1)  # results are copies: the next replay does not see this
    assert torch.equal(cache.run("k", fn, (torch.ones(3), torch.ones(3))), torch.full((3,), 3.0))


def test_graphed_levels_match_eager_sampling_across_batches():
    """Each level's chain, replayed with other labels and noise, gives what eager sampling gives: the
    level function reads every per-batch tensor from its arguments."""
    eager, graphed = shapes_model(), shapes_model()
    graphed.graphs = GraphCache(emulate=True)
    graphed.load_components({k: v.state_dict() for k, v in eager.components().items()}, "test")
    g_eager, g_graphed = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)  # one per run, as in `sample`
    for classes, w in [(torch.tensor([0, 1, 2, 3]), 0.5), (torch.tensor([3, 3, 0, 1]), 0.5), (torch.tensor([2, 0, 1, 1]), 2.0)]:
        for a, b in zip(draw(eager, g_eager, classes, guidance=w), draw(graphed, g_graphed, classes, guidance=w)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(graphed.graphs.entries) == 2 * graphed.levels.num_levels  # one per level and guidance weight


def test_channels_last_sampling_matches_contiguous():
    plain, cl = shapes_model(), shapes_model()
    cl.load_components({k: v.state_dict() for k, v in plain.components().items()}, "test")
    cl.use_channels_last()
    assert any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in cl.ema.parameters())
    classes = torch.tensor([0, 1, 2, 3])
    out_cl = draw(cl, 4, classes, guidance=1.0)
    assert out_cl[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(draw(plain, 4, classes, guidance=1.0), out_cl):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_chain_close_to_float32():
    torch.manual_seed(0)
    net = EBMResNet(3, [16, 32], 1, 64).eval().requires_grad_(False)
    x0 = torch.randn(4, 3, 16, 16)
    logsnr = torch.zeros(4)

    def run(autocast):
        return langevin(lambda x: net(x, logsnr), x0, step_size=0.1, steps=10, anchor=x0, anchor_precision=1.0,
                        generator=torch.Generator().manual_seed(0), autocast=autocast).x

    full, half = run(None), run(torch.bfloat16)
    assert half.dtype == torch.float32
    moved = (full - x0).abs().max()
    assert 0 < (half - full).abs().max() < 2e-2 * moved  # autocast ran, and the chain barely noticed


def test_bf16_autocast_sampling_close_to_float32():
    plain, half = shapes_model(), shapes_model(["speed.autocast=bf16"])
    half.load_components({k: v.state_dict() for k, v in plain.components().items()}, "test")
    classes = torch.tensor([0, 1, 2, 3])
    a, b = draw(plain, 5, classes, guidance=1.0)[-1], draw(half, 5, classes, guidance=1.0)[-1]
    assert 0 < (a - b).norm() < 0.02 * a.norm()  # bf16 rounding through 6 levels of an untrained model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_match_eager_on_gpu():
    eager = shapes_model(["speed.cuda_graphs=false"], device="cuda")
    graphed = shapes_model(device="cuda")
    graphed.load_components({k: v.state_dict() for k, v in eager.components().items()}, "test")
    assert graphed.graphs is not None
    classes = torch.tensor([0, 1, 2, 3], device="cuda")
    for seed in (1, 2):
        a, b = draw(eager, seed, classes, guidance=0.5)[-1], draw(graphed, seed, classes, guidance=0.5)[-1]
        assert b.isfinite().all() and (a - b).abs().max() < 1e-3
    assert all(e is not None for e in graphed.graphs.entries.values())  # captured, not fallen back


def test_ebmkit_speed_adjusts_a_stored_model(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(path, shapes_model(), 0)
    monkeypatch.setenv("EBMKIT_SPEED", "autocast=bf16, cuda_graphs=false")
    m, _ = load_model(path)
    assert m.autocast == torch.bfloat16 and not m.preset.speed.cuda_graphs
    monkeypatch.setenv("EBMKIT_SPEED", "autocast=fp8")
    with pytest.raises(EbmkitError, match=r"with EBMKIT_SPEED\): speed.autocast"):
        load_model(path)


def test_channels_last_coopflow_matches_contiguous():
    """On CUDA every image model's networks go channels-last; the flow's squeezes and splits must not care."""
    torch.manual_seed(0)
    preset = load_preset("coopflow-digits", ["langevin.steps=3", "train.pretrain_iterations=0", "train.warmup_iterations=0"])
    plain = build_method(preset, (1, 8, 8))
    plain.nets["flow"](torch.rand(16, 1, 8, 8) * 2 - 1)  # ActNorm's data-dependent initialisation
    plain.ema.load_state_dict(plain.nets.state_dict())
    cl = build_method(preset, (1, 8, 8))
    cl.load_components({k: v.state_dict() for k, v in plain.components().items()}, "test")
    cl.use_channels_last()
    a, b = (m.sample(8, torch.Generator().manual_seed(0)) for m in (plain, cl))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
