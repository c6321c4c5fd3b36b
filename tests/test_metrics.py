"""MMD against closed forms."""

import math

import pytest
import torch

from ebmkit.data.points import PointUnits
from ebmkit.data.toy2d import sample_toy
from ebmkit.metrics.mmd import mmd2, mmd2_each
from ebmkit.metrics.points import points_report
from ebmkit.presets import load_preset


def test_identical_sets_give_zero():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert all(abs(v) < 1e-12 for v in mmd2(x, x).values())


def test_point_masses_closed_form():
    a, b = torch.zeros(5, 2), torch.full((7, 2), 0.5)  # |a - b|^2 = 0.5
    for h, v in mmd2(a, b, (0.3, 1.0)).items():  # kernels in float32 (mmd._mean_kernel)
        assert v == pytest.approx(2 - 2 * math.exp(-0.5 / (2 * h * h)), rel=1e-6)


def test_mmd2_matches_float64_on_nearby_sets():
    """The float32 blocks keep the small differences MMD^2 is made of: two 3,000-point sets a tenth of a
    bandwidth apart, at the CDRL recipe's spread (std 4), against a float64 evaluation of the definition."""
    g = torch.Generator().manual_seed(3)
    x, y = 4 * torch.randn(3000, 2, generator=g), 4 * torch.randn(3000, 2, generator=g) + 0.02
    bandwidths = (0.2, 0.4, 1.0, 2.0, 4.0)

    def mean_kernel(a, b, h):
        return torch.exp(-torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
                         / (2 * h * h)).mean()

    for h, v in mmd2(x, y, bandwidths).items():
        exact = float(mean_kernel(x, x, h) + mean_kernel(y, y, h) - 2 * mean_kernel(x, y, h))
        assert v == pytest.approx(exact, rel=1e-5)


def test_two_draws_of_one_gaussian_are_close_and_a_shift_is_not():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    same, shifted = sum(mmd2(x, y).values()), sum(mmd2(x, y + 1.0).values())
    assert 0 < same < shifted / 50


def test_mmd2_each_matches_mmd2():
    g = torch.Generator().manual_seed(2)
    x1, x2, y = (torch.randn(300, 2, generator=g) for _ in range(3))
    assert mmd2_each([x1, x2], y) == [mmd2(x1, y), mmd2(x2, y)]


class DrawsOf:
    """A stand-in point model whose samples are draws of a built-in set, optionally shifted."""

    def __init__(self, name: str, shift: float = 0.0):
        self.preset = load_preset("cdrl-points", [f'data.name="{name}"'])
        self.shape, self.device, self.units = (2,), torch.device("cpu"), PointUnits.identity(2)
        self.name, self.shift = name, shift

    def sample(self, n, generator, batch_size=None, steps=None):
        return sample_toy(self.name, n, generator) * self.preset.data.toy_scale + self.shift


def test_points_report_rates_the_data_itself_near_one_and_a_shift_far_above():
    """Repeats average the noisy data-versus-data baseline; a model that is the data reads about 1."""
    same = points_report(DrawsOf("rings"), num=1000, repeats=4)
    shifted = points_report(DrawsOf("rings", shift=0.5), num=1000, repeats=4)
    assert len(same["ratio_each"]) == 4 and same["ratio"] == pytest.approx(same["mmd2_model_sum"] / same["mmd2_data_sum"])
    assert 0.7 < same["ratio"] < 1.3 and shifted["ratio"] > 3, (same["ratio"], shifted["ratio"])
