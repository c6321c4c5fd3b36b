"""Networks of ebmkit.nets: shapes, conditioning, embeddings, identity init, spectral norm, paper sizes."""

import math

import pytest
import torch
from torch.nn.utils import parametrize

from ebmkit.nets import (EBMMLP, EBMResNet, InitMLP, NoiseLevelEmbedding, UNet, count_parameters,
                         logsnr_to_unit, sinusoidal_embedding)

B = 3

# (name, constructor(num_classes), input shape, output shape)
NETS = [
    ("ebm_mlp", lambda k: EBMMLP(2, hidden=32, num_blocks=2, temb_dim=32, num_classes=k), (B, 2), (B,)),
    ("init_mlp", lambda k: InitMLP(2, hidden=32, num_blocks=2, temb_dim=32, num_classes=k), (B, 2), (B, 2)),
    ("ebm_8x8", lambda k: EBMResNet(1, (32, 64), 2, 64, num_classes=k), (B, 1, 8, 8), (B,)),
    ("ebm_32x32", lambda k: EBMResNet(3, (16, 32, 32), 1, 64, num_classes=k), (B, 3, 32, 32), (B,)),
    ("unet_8x8", lambda k: UNet(1, 8, base_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                attn_resolutions=(4,), temb_dim=64, num_classes=k), (B, 1, 8, 8), (B, 1, 8, 8)),
    ("unet_32x32", lambda k: UNet(3, 32, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                                  temb_dim=64, num_heads=2, num_classes=k), (B, 3, 32, 32), (B, 3, 32, 32)),
]
IDS = [n[0] for n in NETS]
LOGSNR = torch.tensor([9.8, 0.14, -5.1])  # clean, middle and noisiest CDRL levels


# ---- embeddings ----------------------------------------------------------------------------------

def test_logsnr_to_unit_values():
    lam = torch.tensor([0.0, -2 * math.log(math.tan(math.pi / 8)), 2 * math.log(math.tan(3 * math.pi / 8)),
                        20.0, 100.0], dtype=torch.float64)
    u = logsnr_to_unit(lam)
    assert u.dtype == torch.float64
    assert torch.allclose(u[:3], torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), atol=1e-12)
    assert u[3] == u[4]  # clamped at +20
    assert torch.allclose(logsnr_to_unit(torch.tensor([-100.0], dtype=torch.float64)),
                          torch.tensor([2 / math.pi * math.atan(math.exp(10.0))], dtype=torch.float64))


def test_sinusoidal_embedding_values():
    u = torch.tensor([0.5, 0.0], dtype=torch.float64)
    emb = sinusoidal_embedding(u, 4)  # half = 2: frequencies 1 and 1e-4, position 1000 * u
    expected = torch.tensor([[math.sin(500), math.sin(0.05), math.cos(500), math.cos(0.05)],
                             [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    assert emb.dtype == torch.float64 and torch.allclose(emb, expected, atol=1e-12)
    odd = sinusoidal_embedding(u, 5, scale=2.0)  # position 1.0 and 0.0, zero pad to 5
    assert torch.allclose(odd[0], torch.tensor([math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4), 0.0],
                                               dtype=torch.float64), atol=1e-12)


def test_noise_level_embedding_labels():
    emb = NoiseLevelEmbedding(16, 32, torch.nn.functional.silu, num_classes=4)
    label = torch.tensor([0, 1, 4])
    out = emb(LOGSNR, label)
    assert out.shape == (B, 32)
    # the label term is exactly one row of the label projection added to the time embedding
    unlabeled = emb.dense2(emb.act(emb.dense1(sinusoidal_embedding(logsnr_to_unit(LOGSNR), 16))))
    assert torch.allclose(out - unlabeled, emb.label_proj.weight.T[label] + emb.label_proj.bias, atol=1e-6)
    with pytest.raises(ValueError):
        emb(LOGSNR)
    with pytest.raises(ValueError):
        NoiseLevelEmbedding(16, 32, torch.nn.functional.silu)(LOGSNR, label)


# ---- all networks --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,make,in_shape,out_shape", NETS, ids=IDS)
@pytest.mark.parametrize("num_classes", [0, 3])
def test_shapes_and_label_checks(name, make, in_shape, out_shape, num_classes):
    torch.manual_seed(0)
    net = make(num_classes)
    x = torch.randn(in_shape)
    label = torch.tensor([0, 1, 3]) if num_classes else None
    assert net(x, LOGSNR, label).shape == out_shape
    assert net(x, torch.tensor(0.5), label).shape == out_shape  # a scalar log-SNR broadcasts
    with pytest.raises(ValueError):
        net(x, LOGSNR, None if num_classes else torch.tensor([0, 1, 1]))


@pytest.mark.parametrize("name,make,in_shape,out_shape", NETS, ids=IDS)
def test_labels_and_noise_level_change_output(name, make, in_shape, out_shape):
    torch.manual_seed(0)
    net = make(3)
    with torch.no_grad():  # move identity-initialised nets off the identity
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(in_shape)
    out = net(x, LOGSNR, torch.zeros(B, dtype=torch.long))
    assert not torch.allclose(out, net(x, LOGSNR, torch.full((B,), 2)))
    assert not torch.allclose(out, net(x, LOGSNR + 1.0, torch.zeros(B, dtype=torch.long)))


@pytest.mark.parametrize("name,make,in_shape,out_shape", NETS, ids=IDS)
def test_eval_is_deterministic(name, make, in_shape, out_shape):
    torch.manual_seed(0)
    net = make(0)
    x = torch.randn(in_shape)
    net(x, LOGSNR)  # one training-mode call: power iterations / dropout
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x, LOGSNR), net(x, LOGSNR))


# ---- initializers --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,make,in_shape,out_shape", [n for n in NETS if "init" in n[0] or "unet" in n[0]],
                         ids=[i for i in IDS if "init" in i or "unet" in i])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_initializer_is_identity_at_init_and_trainable(name, make, in_shape, out_shape, num_classes):
    torch.manual_seed(0)
    net = make(num_classes)
    x = torch.randn(in_shape)
    label = torch.tensor([0, 1, 3]) if num_classes else None
    y = net(x, LOGSNR, label)
    assert torch.equal(y, x)
    (y - 1.0).square().sum().backward()
    out_layer = net.out[-1]
    assert out_layer.weight.grad.abs().sum() > 0  # the zero output layer still learns


# ---- EBM -----------------------------------------------------------------------------------------

def test_ebm_resnet_spectral_norm_and_grad():
    torch.manual_seed(0)
    net = EBMResNet(1, (32, 64), 2, 64)
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    sn = [m for m in convs if parametrize.is_parametrized(m, "weight")]
    assert all(parametrize.is_parametrized(m, "weight") for m in convs if isinstance(m, torch.nn.Conv2d))
    assert len(sn) == len(convs) - 1 and not parametrize.is_parametrized(net.head)  # head is a plain linear map
    assert not any(parametrize.is_parametrized(m) for m in EBMResNet(1, (32, 64), 2, 64, spectral_norm=False).modules())

    x = torch.randn(B, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x, LOGSNR).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_ebm_mlp_spectral_norm_and_float64():
    torch.manual_seed(0)
    net = EBMMLP(2, hidden=16, num_blocks=1, temb_dim=16).double()
    assert parametrize.is_parametrized(net.stem) and parametrize.is_parametrized(net.blocks[0].fc1)
    x = torch.randn(B, 2, dtype=torch.float64, requires_grad=True)
    out = net(x, LOGSNR.double())
    assert out.dtype == torch.float64
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all()


def test_count_parameters():
    assert count_parameters(torch.nn.Linear(3, 4)) == 16
    with_sn = EBMMLP(2, hidden=8, num_blocks=1, temb_dim=8)
    without = EBMMLP(2, hidden=8, num_blocks=1, temb_dim=8, spectral_norm=False)
    assert count_parameters(with_sn) == count_parameters(without)  # power-iteration vectors are buffers


def test_paper_configs_build():
    torch.manual_seed(0)
    ebm = EBMResNet(3, (128, 256, 256, 256), 8, 512)  # Table 5.7, CDRL 32x32
    unet = UNet(3, 32)  # sec. 5.4.8.1 initializer
    n_ebm, n_unet = count_parameters(ebm), count_parameters(unet)
    print(f"EBMResNet paper config: {n_ebm:,} parameters; UNet 32x32 initializer: {n_unet:,}")
    assert 30e6 < n_ebm < 40e6
    assert 2e6 < n_unet < 5e6
    x = torch.randn(1, 3, 32, 32)
    assert ebm(x, LOGSNR[:1]).shape == (1,)
