"""The procedural shapes data set: determinism, layout, balance, colours, sizes and learnability."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from ebmkit.data import BUILTIN, load_dataset
from ebmkit.data.shapes import load_shapes
from ebmkit.errors import EbmkitError

SHAPES = ["circle", "square", "triangle", "cross"]
COLORS = {"red": [1, 0, 0], "green": [0, 1, 0], "blue": [0, 0, 1], "yellow": [1, 1, 0]}


@pytest.fixture(scope="module")
def train_set():
    return load_dataset("shapes")


@pytest.fixture(scope="module")
def test_set():
    return load_dataset("shapes", split="test")


def _foreground(x: torch.Tensor) -> torch.Tensor:
    """bool (N, H, W): pixels where the shape covers at least about half the pixel."""
    return x.amax(1) > 100


def test_layout_and_metadata(train_set, test_set):
    assert "shapes" in BUILTIN
    assert (len(train_set), len(test_set)) == (10_000, 2_000)
    assert train_set.name == "shapes" and train_set.kind == "images" and train_set.shape == (3, 16, 16)
    assert train_set.x.dtype == torch.uint8 and train_set.x.max() == 255 and train_set.x.min() == 0
    assert train_set.x[..., [0, 0, -1, -1], [0, -1, 0, -1]].eq(0).all()  # black corners: shapes stay inside
    assert train_set.labels.dtype == torch.int64 and train_set.attributes.dtype == torch.int64
    assert train_set.attributes.shape == (10_000, 3)
    assert torch.equal(train_set.labels, train_set.attributes[:, 0])
    assert train_set.class_names == SHAPES and train_set.attribute_names == ["shape", "color", "size"]
    assert train_set.attribute_values == [SHAPES, list(COLORS), ["small", "large"]]
    big = load_shapes("test", image_size=32)
    assert big.x.shape == (2_000, 3, 32, 32) and torch.equal(big.attributes, test_set.attributes)
    # The same scenes at both sizes: 32x32 averaged down to 16x16 is close to the 16x16 rendering.
    assert (F.avg_pool2d(big.x.float(), 2) - test_set.x.float()).abs().mean() < 1


def test_determinism(train_set, test_set):
    torch.manual_seed(123)  # the global RNG plays no part
    again = load_dataset("shapes")
    assert torch.equal(train_set.x, again.x) and torch.equal(train_set.attributes, again.attributes)
    assert not torch.equal(train_set.x[:2_000], test_set.x)
    full = load_dataset("shapes", split="all")
    assert torch.equal(full.x, torch.cat([train_set.x, test_set.x]))
    assert torch.equal(full.attributes, torch.cat([train_set.attributes, test_set.attributes]))


def test_balanced_attributes(train_set):
    for j, values in enumerate(train_set.attribute_values):
        freq = torch.bincount(train_set.attributes[:, j], minlength=len(values)).float() / len(train_set)
        assert len(freq) == len(values) and (freq - 1 / len(values)).abs().max() < 0.03
    pairs = torch.bincount(4 * train_set.attributes[:, 0] + train_set.attributes[:, 1], minlength=16).float()
    assert (pairs / (len(train_set) / 16) - 1).abs().max() < 0.2  # every shape appears in every colour


def test_colors(train_set):
    fg = _foreground(train_set.x)
    for c, rgb in enumerate(COLORS.values()):
        sel = train_set.attributes[:, 1] == c
        mean = train_set.x[sel].permute(1, 0, 2, 3)[:, fg[sel]].float().mean(1)  # (3,) over foreground pixels
        on = torch.tensor(rgb, dtype=torch.bool)
        assert (mean[on] > 150).all() and (mean[~on] == 0).all()


def test_sizes(train_set):
    area = _foreground(train_set.x).sum((1, 2)).float()  # (N,)
    for s in range(len(SHAPES)):
        small = area[(train_set.attributes[:, 0] == s) & (train_set.attributes[:, 2] == 0)].mean()
        large = area[(train_set.attributes[:, 0] == s) & (train_set.attributes[:, 2] == 1)].mean()
        assert small > 5 and large > 2 * small


def test_bad_arguments():
    for size in (8, 64):
        with pytest.raises(EbmkitError, match="16 or 32"):
            load_dataset("shapes", image_size=size)
    with pytest.raises(EbmkitError, match="split"):
        load_dataset("shapes", split="valid")


def test_shape_is_learnable(train_set, test_set):
    n = 3_000
    clf = MLPClassifier((64,), max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train_set.x[:n].flatten(1).numpy() / 255, train_set.labels[:n].numpy())
    assert clf.score(test_set.x.flatten(1).numpy() / 255, test_set.labels.numpy()) >= 0.9
