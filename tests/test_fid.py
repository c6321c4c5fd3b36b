"""FID numerics against closed forms, the offline Inception path with a stub network, and the
domain classifier of the built-in sets."""

import numpy as np
import pytest
import torch
from PIL import Image

from ebmkit.data import load_dataset
from ebmkit.errors import EbmkitError
from ebmkit.metrics.frechet import FeatureStats, feature_stats, frechet_distance
from ebmkit.metrics.inception import InceptionFeatures


def gaussian(mu, sigma):
    return FeatureStats(np.asarray(mu, float), np.asarray(sigma, float), 0, "test", "test")


def test_commuting_covariances_closed_form():
    # d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2 for diagonal covariances
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    d = frechet_distance(gaussian([0, 0, 0], np.diag(a)), gaussian([1, 2, 0], np.diag(b)))
    assert d == pytest.approx(5 + (1 - 3) ** 2 + (2 - 1) ** 2, rel=1e-10)


def test_scaled_full_covariance_closed_form():
    # S2 = c^2 S1  ->  tr(S1 + c^2 S1 - 2 c S1) = (1 - c)^2 tr(S1)
    g = np.random.default_rng(0)
    m = g.normal(size=(5, 5))
    s1, c = m @ m.T + np.eye(5), 3.0
    d = frechet_distance(gaussian(np.zeros(5), s1), gaussian(np.ones(5), c * c * s1))
    assert d == pytest.approx(5 + (1 - c) ** 2 * np.trace(s1), rel=1e-8)


def test_sample_statistics_converge_to_the_closed_form():
    g = np.random.default_rng(1)
    x = g.normal(size=(200_000, 3)) * [1.0, 2.0, 0.5]
    y = g.normal(size=(200_000, 3)) * [3.0, 1.0, 0.5] + [1.0, 2.0, 0.0]
    d = frechet_distance(feature_stats(x, "t", "x"), feature_stats(y, "t", "y"))
    assert d == pytest.approx(5 + 4 + 1, abs=0.05)


def test_identical_sets_give_zero():
    x = np.random.default_rng(2).normal(size=(500, 16))
    assert abs(frechet_distance(feature_stats(x, "t", "a"), feature_stats(x.copy(), "t", "b"))) < 1e-8


# ---------------------------------------------------------------------------- Inception, offline
def test_inception_path_uses_clean_resize_and_the_local_network(stub_inception):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 20, 20), dtype=torch.uint8, generator=g)
    feats = InceptionFeatures(stub_inception)(images)
    # reference: PIL bicubic on float channels to 299x299 (clean-fid's "clean" mode), then (x - 128) / 128
    resized = [np.stack([np.asarray(Image.fromarray(im[c].numpy().astype(np.float32), mode="F")
                                    .resize((299, 299), Image.BICUBIC)).clip(0, 255) for c in range(3)])
               for im in images]
    net = torch.jit.load(str(stub_inception))
    expected = net.layers((torch.from_numpy(np.stack(resized)) - 128) / 128).reshape(3, -1).detach().numpy()
    assert feats.shape == (3, 8)
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)


def test_grey_images_are_repeated_to_rgb(stub_inception):
    grey = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    space = InceptionFeatures(stub_inception)
    np.testing.assert_array_equal(space(grey), space(grey.expand(-1, 3, -1, -1)))


def test_missing_or_wrong_weights_name_the_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("EBMKIT_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(EbmkitError, match="inception-2015-12-05.pt.*--inception-weights"):
        InceptionFeatures()
    with pytest.raises(EbmkitError, match="not found: download"):
        InceptionFeatures(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a network")
    with pytest.raises(EbmkitError, match="not the TorchScript Inception"):
        InceptionFeatures(junk)


# ---------------------------------------------------------------------------- domain features
@pytest.fixture(scope="module")
def digits_space():
    from ebmkit.metrics.domain import DomainFeatures

    return DomainFeatures("digits", 8)  # trained into the session's cache (conftest) on first use


def test_digits_classifier_accuracy_and_cache(digits_space):
    from ebmkit.metrics.domain import DomainFeatures

    assert digits_space.test_accuracy >= 0.95
    assert digits_space.path.is_file()
    cached = DomainFeatures("digits", 8)  # loads the file instead of training
    x = load_dataset("digits", split="test").x[:50]
    np.testing.assert_array_equal(cached(x), digits_space(x))
    assert cached.test_accuracy == digits_space.test_accuracy


def test_domain_fid_ranks_real_above_blur_and_noise(digits_space):
    from torchvision.transforms.functional import gaussian_blur

    from ebmkit.metrics.fid import stats_of

    ref = stats_of(digits_space, load_dataset("digits", split="train").x, "digits:train")
    test = load_dataset("digits", split="test").x
    blurred = gaussian_blur(test.float(), 3, 1.0).round().to(torch.uint8)
    noise = torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    fid = {name: frechet_distance(stats_of(digits_space, x, name), ref)
           for name, x in [("real", test), ("blur", blurred), ("noise", noise)]}
    assert fid["real"] * 10 < fid["blur"] < fid["noise"], fid
