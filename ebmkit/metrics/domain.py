"""Domain features for the built-in image sets, where Inception is the wrong yardstick.

A small CNN classifier, trained deterministically on a built-in labelled set (digits, shapes) and
cached as safetensors in the user's cache directory. Its penultimate activations are the features of
a "domain-FID"; its predictions say how recognisable generated samples are. Domain-FIDs compare
models on one data set; they are not Inception FIDs and not comparable with the literature.
"""

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ebmkit.checkpoint import FORMAT, atomic_save, read_safetensors
from ebmkit.data import Dataset, load_dataset, to_model_space
from ebmkit.errors import EbmkitError

VERSION = "1"          # bump when the network or its training changes: old caches are then ignored
FEATURES = 64
EPOCHS, BATCH, LR = 30, 64, 2e-3
log = logging.getLogger("ebmkit")


def cache_dir() -> Path:
    """$EBMKIT_CACHE, else $XDG_CACHE_HOME/ebmkit, else ~/.cache/ebmkit."""
    if "EBMKIT_CACHE" in os.environ:
        return Path(os.environ["EBMKIT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "ebmkit"


class DomainClassifier(nn.Module):
    """(N, C, H, W) model-space images -> logits; `features` gives the (N, 64) penultimate layer."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),                  # (N, 64 * 16)
            nn.Linear(64 * 16, FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translations by up to one pixel (the augmentation that keeps features robust)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dy, dx = torch.randint(0, 3, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(-1, x.shape[1], -1, w + 2)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(-1, x.shape[1], h, -1)
    return out.gather(3, cols)


def targets(data: Dataset, target: str | None = None) -> tuple[torch.Tensor, list[str]]:
    """The labels a classifier learns: the class (target None) or one attribute of each image."""
    if target is None:
        if data.labels is None or data.class_names is None:
            raise EbmkitError(f"{data.name} has no class labels to train a domain classifier on")
        return data.labels, data.class_names
    if target not in (data.attribute_names or []):
        raise EbmkitError(f"{data.name} has no attribute {target!r}")
    j = data.attribute_names.index(target)
    return data.attributes[:, j].long(), data.attribute_values[j]


def accuracy(net: DomainClassifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([net(to_model_space(b)).argmax(1) for b in x.split(512)])
    return float((pred == labels).float().mean())


def train_classifier(name: str, image_size: int | None = None, target: str | None = None) -> tuple[DomainClassifier, float]:
    """Train on the set's train split with a fixed seed to predict its class (or attribute `target`);
    returns the network and its test accuracy."""
    train, test = load_dataset(name, split="train", image_size=image_size), load_dataset(name, split="test", image_size=image_size)
    labels, names = targets(train, target)
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = DomainClassifier(train.shape[0], len(names))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS * -(-len(train) // BATCH))
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(train), generator=gen).split(BATCH):
            x = _shift(to_model_space(train.x[idx]), gen)
            loss = F.cross_entropy(net(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net, accuracy(net, test.x, targets(test, target)[0])


class DomainFeatures:
    """uint8 (N, C, H, W) images of a built-in set -> (N, 64) features of its domain classifier.
    With `target`, the classifier predicts that attribute instead of the class (for measuring
    compositional generation); the features of the class classifier are the domain-FID's."""

    def __init__(self, name: str, image_size: int, device: torch.device | str = "cpu", target: str | None = None):
        self.data, self.image_size = name, image_size
        self.name = f"domain-{name}-{image_size}px" + (f"-{target}" if target else "")
        self.label = f"domain-FID ({name} classifier features, not Inception)"
        path = cache_dir() / f"{self.name}-v{VERSION}.safetensors"
        if path.is_file():
            tensors, meta = read_safetensors(path, "domain classifier")
            info = json.loads(meta["info"])
            net = DomainClassifier(info["channels"], len(info["class_names"]))
            net.load_state_dict(tensors)
        else:
            log.warning(f"first use of {self.name}: training it once ({EPOCHS} epochs; seconds to minutes on a CPU), cached as {path}")
            net, acc = train_classifier(name, image_size, target)
            log.warning(f"{self.name} trained: {acc:.1%} test accuracy")
            test = load_dataset(name, split="test", image_size=image_size)
            info = {"data": name, "image_size": image_size, "channels": test.shape[0], "target": target,
                    "class_names": targets(test, target)[1], "test_accuracy": acc, "version": VERSION}
            atomic_save(net.state_dict(), {"format": FORMAT, "info": json.dumps(info)}, path)
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        self.class_names: list[str] = info["class_names"]
        self.test_accuracy: float = info["test_accuracy"]
        self.path = path

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> model space on the device; RGB files of a grey set are averaged to grey."""
        channels = self.net.body[0].in_channels
        x = to_model_space(images.to(self.device))
        return x.mean(1, keepdim=True) if channels == 1 and x.shape[1] == 3 else x

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.net.features(self._prepare(images)).double().cpu().numpy()

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, classes) softmax of the classifier."""
        with torch.no_grad():
            return torch.cat([self.net(self._prepare(b)).softmax(1).cpu() for b in images.split(512)])

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """(N,) predicted class indices."""
        return self.probabilities(images).argmax(1)

    def confident(self, images: torch.Tensor, threshold: float = 0.9) -> float:
        """Fraction of images the classifier assigns to one class with probability >= threshold."""
        return float((self.probabilities(images).max(1).values >= threshold).float().mean())
