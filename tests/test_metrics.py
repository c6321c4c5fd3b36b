"""MMD against closed forms."""

import math

import pytest
import torch

from ebmkit.metrics.mmd import mmd2


def test_identical_sets_give_zero():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert all(abs(v) < 1e-12 for v in mmd2(x, x).values())


def test_point_masses_closed_form():
    a, b = torch.zeros(5, 2), torch.full((7, 2), 0.5)  # |a - b|^2 = 0.5
    for h, v in mmd2(a, b, (0.3, 1.0)).items():
        assert v == pytest.approx(2 - 2 * math.exp(-0.5 / (2 * h * h)), rel=1e-12)


def test_two_draws_of_one_gaussian_are_close_and_a_shift_is_not():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    same, shifted = sum(mmd2(x, y).values()), sum(mmd2(x, y + 1.0).values())
    assert 0 < same < shifted / 50
