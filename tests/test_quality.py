"""Acceptance figures of the CPU presets (slow: `make test-slow`). docs/results quotes the same numbers."""

import pytest

from ebmkit.methods import load_model
from ebmkit.metrics.points import points_report
from ebmkit.presets import load_preset
from ebmkit.training import train

pytestmark = pytest.mark.slow


def test_checkerboard_demo_quality(tmp_path):
    """`make demo`: >= 90% of 5,000 samples on the squares, MMD^2 <= 3x a second data draw's."""
    model = train(load_preset("cdrl-points"), tmp_path / "run", quiet=True)
    report = points_report(load_model(model)[0], num=5000, seed=0)
    assert report["on_squares"] >= 0.90, report
    assert report["ratio"] <= 3.0, report
