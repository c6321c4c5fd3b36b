"""FID of samples against a reference set, with Inception or domain features.

A reference is a folder of images, a statistics .npz (`mu`, `sigma`, written by `ebmkit eval
fid-stats`), a built-in data set `NAME` / `NAME:SPLIT`, or by default a model's own training data.
Built-in image sets (digits, shapes) are measured in the feature space of their own classifier
("domain-FID", see metrics/domain.py); everything else in Inception's. A domain-FID report carries
a real-data baseline: the FID of the set's held-out split against the same reference.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ebmkit.data import from_config, from_model_space, load_dataset
from ebmkit.data.files import IMAGE_SETS as DOMAIN_SETS
from ebmkit.data.files import builtin_spec, load_images, read_images
from ebmkit.errors import EbmkitError
from ebmkit.metrics.frechet import FeatureStats, feature_stats, frechet_distance

Progress = Callable[[int], None]


@dataclass
class Reference:
    source: str                               # how reports name it, e.g. "digits:train"
    builtin: str | None = None                # the built-in image set it comes from
    stats_file: Path | None = None            # precomputed statistics
    images: Callable[[], torch.Tensor] | None = None   # loads uint8 (N, C, H, W)


def resolve_reference(ref: str | None, data_cfg=None, image_size: int | None = None) -> Reference:
    """A reference from the --ref string, or from a model's data section when there is none."""
    if ref is None:
        if data_cfg is None:
            raise EbmkitError("give --ref (an image folder, a statistics .npz or a built-in set such as digits)")
        if data_cfg.name in DOMAIN_SETS:  # the built-in set itself, whatever folders the working directory holds
            return Reference(f"{data_cfg.name}:train", builtin=data_cfg.name,
                             images=lambda: load_dataset(data_cfg.name, split="train", image_size=image_size).x)
        complete = data_cfg.model_copy(update={"masked": False}) if getattr(data_cfg, "masked", False) else data_cfg
        return Reference(f"{data_cfg.name}:train", images=lambda: from_config(complete, "train").x)  # Table 3.6: unmasked
    builtin = builtin_spec(ref)
    if builtin:
        return Reference(":".join(builtin), builtin=builtin[0], images=lambda: load_images(ref, image_size))
    path = Path(ref).expanduser()
    if not path.exists():
        raise EbmkitError(f"reference {ref} not found: give an image folder, a statistics .npz "
                          f"or a built-in set ({', '.join(DOMAIN_SETS)}, optionally :train or :test)")
    if path.suffix == ".npz" and path.is_file() and _holds_stats(path):
        return Reference(str(path), builtin=_domain_set(path), stats_file=path)
    return Reference(str(path), images=lambda: read_images(path, image_size))


def _holds_stats(path: Path) -> bool:
    with np.load(path) as z:
        return "mu" in z and "sigma" in z


def _domain_set(path: Path) -> str | None:
    """The built-in set whose domain features a statistics file holds ('domain-digits-8px' -> 'digits')."""
    with np.load(path) as z:
        features = str(z["features"]) if "features" in z else ""
    return features.split("-")[1] if features.startswith("domain-") else None


def feature_space(kind: str, builtin: str | None, image_size: int | None, device,
                  inception_weights: str | Path | None = None):
    """'inception', 'domain' or 'auto' (domain for a built-in image set, else Inception)."""
    if kind not in ("auto", "inception", "domain"):
        raise EbmkitError(f"--features {kind}: choose auto, inception or domain")
    if kind == "domain" or (kind == "auto" and builtin):
        if not builtin:
            raise EbmkitError(f"domain features exist for the built-in image sets only ({', '.join(DOMAIN_SETS)})")
        from ebmkit.metrics.domain import DomainFeatures

        return DomainFeatures(builtin, image_size or load_dataset(builtin, split="test").shape[-1], device)
    from ebmkit.metrics.inception import InceptionFeatures

    return InceptionFeatures(inception_weights, device)


def stats_of(space, images: torch.Tensor, source: str, batch_size: int = 256,
             progress: Progress | None = None) -> FeatureStats:
    """Feature statistics of uint8 (N, C, H, W) images, extracted in batches."""
    if len(images) < 2:
        raise EbmkitError(f"{source}: FID needs at least 2 images, got {len(images)}")
    feats = []
    for batch in images.split(batch_size):
        feats.append(space(batch))
        if progress:
            progress(len(batch))
    return feature_stats(np.concatenate(feats), space.name, source)


def reference_stats(space, ref: Reference, batch_size: int = 256, progress: Progress | None = None) -> FeatureStats:
    if ref.stats_file is not None:
        return load_stats(ref.stats_file, space.name)
    return stats_of(space, ref.images(), ref.source, batch_size, progress)


def save_stats(stats: FeatureStats, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu=stats.mu, sigma=stats.sigma, num=stats.num, features=stats.features, source=stats.source)


def load_stats(path: str | Path, features: str) -> FeatureStats:
    """Statistics from a .npz; an error if they were computed in another feature space."""
    with np.load(path) as z:
        stored = str(z["features"]) if "features" in z else "inception"  # e.g. clean-fid's own files
        stats = FeatureStats(z["mu"], z["sigma"], int(z["num"]) if "num" in z else 0, stored,
                             str(z["source"]) if "source" in z else str(path))
    if stored != features:
        raise EbmkitError(f"{path} holds {stored} statistics but this FID uses {features} features")
    return stats


def fid_report(space, samples: torch.Tensor, ref_stats: FeatureStats, batch_size: int = 256,
               progress: Progress | None = None) -> dict:
    """FID of uint8 samples against reference statistics, naming the sample count and the reference."""
    stats = stats_of(space, samples, "samples", batch_size, progress)
    report = {"metric": space.label, "features": space.name, "fid": frechet_distance(stats, ref_stats),
              "num": stats.num, "ref": ref_stats.source, "ref_num": ref_stats.num}
    if hasattr(space, "classify"):
        report.update(domain_extras(space, samples, ref_stats, batch_size))
    return report


def domain_extras(space, samples: torch.Tensor, ref_stats: FeatureStats, batch_size: int) -> dict:
    """The real-data baseline (the held-out split against the same reference) and how confidently the
    domain classifier recognises the samples, beside the same figure for held-out data."""
    split = "train" if ref_stats.source.endswith(":test") else "test"
    held_out = load_dataset(space.data, split=split, image_size=space.image_size).x
    baseline = frechet_distance(stats_of(space, held_out, f"{space.data}:{split}", batch_size), ref_stats)
    return {"baseline_fid": baseline, "baseline": f"{space.data}:{split}", "baseline_num": len(held_out),
            "classifier_test_accuracy": space.test_accuracy,
            "confident_samples": space.confident(samples), "confident_real": space.confident(held_out),
            "class_histogram": np.bincount(space.classify(samples).numpy(), minlength=len(space.class_names)).tolist()}


def held_out_size(builtin: str) -> int:
    """Size of a built-in set's test split: the default sample count of a domain-FID, so that the
    model's figure and the real-data baseline rest on equally many images (FID depends on it)."""
    return len(load_dataset(builtin, split="test"))


def evaluate(method, samples: str | None, ref: str | None, num: int | None, features: str,
             inception_weights: str | Path | None, device, batch_size: int = 256, steps: int | None = None,
             seed: int = 0, progress: Progress | None = None) -> dict:
    """`ebmkit eval fid`: the FID report of `num` samples of `method` (default 50,000, or for domain features
    as many as the held-out split holds), or of the image set `samples`, against `ref` (default: the
    model's training data)."""
    images = None if samples is None else load_images(samples)
    size = images.shape[-1] if method is None else method.shape[-1]
    reference = resolve_reference(ref, None if method is None else method.preset.data, size)
    space = feature_space(features, reference.builtin, size, device, inception_weights)
    ref_stats = reference_stats(space, reference, batch_size)
    if images is None:
        num = num or (held_out_size(space.data) if hasattr(space, "data") else 50_000)
        images = from_model_space(method.sample(num, torch.Generator(method.device).manual_seed(seed),
                                                batch_size, progress, steps=steps))
    return fid_report(space, images, ref_stats, batch_size)


def write_stats(data: str, path: str | Path, features: str, image_size: int | None,
                inception_weights: str | Path | None, device, batch_size: int = 256,
                progress: Progress | None = None) -> FeatureStats:
    """`ebmkit eval fid-stats`: reference statistics of an image set, written once to `path`."""
    reference = resolve_reference(data, image_size=image_size)
    if reference.stats_file is not None:
        raise EbmkitError(f"{data} already holds statistics")
    images = reference.images()
    space = feature_space(features, reference.builtin, images.shape[-1], device, inception_weights)
    stats = stats_of(space, images, reference.source, batch_size, progress)
    save_stats(stats, path)
    return stats
