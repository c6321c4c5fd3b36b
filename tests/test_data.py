"""Data sets, uint8 <-> model-space conversion and sharded batches (all on tiny fake files)."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from conftest import write_celeba
from ebmkit.data import BUILTIN, LOCAL, TOY_2D, from_model_space, load_dataset, to_model_space
from ebmkit.data.batches import ShardedBatches
from ebmkit.data.images import CIFAR10_CLASSES
from ebmkit.data.toy2d import on_checkerboard, sample_toy
from ebmkit.errors import EbmkitError


# --- 2-D toys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOY_2D)
def test_toy_shape_range_determinism(name):
    d = load_dataset(name, num_points=5000, seed=3)
    assert d.kind == "points" and d.shape == (2,) and len(d) == 5000
    assert d.x.dtype == torch.float32 and torch.isfinite(d.x).all()
    assert d.x.abs().max() <= 4.5
    assert torch.equal(d.x, load_dataset(name, num_points=5000, seed=3).x)
    assert not torch.equal(d.x, load_dataset(name, num_points=5000, seed=4).x)
    assert not torch.equal(d.x, load_dataset(name, num_points=5000, seed=3, split="test").x)
    assert d.model_space(torch.arange(7)).shape == (7, 2)


def test_checkerboard_membership():
    pts = sample_toy("checkerboard", 20_000, torch.Generator().manual_seed(0))
    assert on_checkerboard(pts).all()
    # Each of the 8 filled cells gets points.
    cells = torch.floor(pts / 2).long() + 2
    assert len(set(map(tuple, cells.tolist()))) == 8
    # Centers of filled cells (cell indices summing to even) vs empty cells, and points outside.
    filled = torch.tensor([[-3.0, -3.0], [1.0, 1.0], [-1.0, -1.0], [3.0, -1.0], [4.0, 4.0]])
    empty = torch.tensor([[-1.0, -3.0], [1.0, -1.0], [-3.0, -1.0], [3.0, 1.0]])
    outside = torch.tensor([[-4.5, -3.0], [5.0, 5.0], [1.0, 4.2], [-4.01, -4.01]])
    assert on_checkerboard(filled).all()
    assert not on_checkerboard(empty).any()
    assert not on_checkerboard(outside).any()


def test_unknown_names():
    with pytest.raises(EbmkitError, match="checkerboard"):
        sample_toy("moons", 10, torch.Generator())
    with pytest.raises(EbmkitError, match="cifar10"):
        load_dataset("mnist")
    with pytest.raises(EbmkitError, match="split"):
        load_dataset("spiral", split="valid")


@pytest.mark.parametrize("name", LOCAL)
def test_local_without_path(name):
    with pytest.raises(EbmkitError, match="data.path"):
        load_dataset(name)


# --- digits and conversion ------------------------------------------------------------------------


def test_digits():
    assert "digits" in BUILTIN
    train, test, full = (load_dataset("digits", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(full)) == (1500, 297, 1797)
    assert train.kind == "images" and train.shape == (1, 8, 8) and train.x.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels.min() == 0 and train.labels.max() == 9
    assert train.class_names == [str(d) for d in range(10)]
    assert full.x.max() == 255 and full.x.min() == 0
    assert torch.equal(train.x, load_dataset("digits", seed=7).x)  # split independent of seed
    # train and test are disjoint and together make up the whole set
    both = torch.cat([train.x, test.x]).flatten(1)
    assert torch.equal(both.sort(0).values, full.x.flatten(1).sort(0).values)
    with pytest.raises(EbmkitError, match="8"):
        load_dataset("digits", image_size=16)


def test_model_space_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    m = to_model_space(x)
    assert m.dtype == torch.float32 and m.min() == -1 and m.max() == 1
    assert torch.equal(from_model_space(m), x)
    assert torch.equal(from_model_space(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))
    d = load_dataset("digits")
    batch = d.model_space(torch.tensor([0, 5]))
    assert batch.shape == (2, 1, 8, 8) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(from_model_space(batch), d.x[[0, 5]])


# --- folder ---------------------------------------------------------------------------------------


def _png(path, color, size=(6, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_with_classes(tmp_path):
    _png(tmp_path / "dog" / "b.png", (0, 255, 0))
    _png(tmp_path / "cat" / "a.png", (255, 0, 0))
    _png(tmp_path / "cat" / "sub" / "c.png", (0, 0, 255))
    (tmp_path / "notes.txt").write_text("not an image")
    d = load_dataset("folder", str(tmp_path))
    assert d.kind == "images" and d.x.shape == (3, 3, 4, 6) and d.x.dtype == torch.uint8
    assert d.class_names == ["cat", "dog"]
    assert d.labels.tolist() == [0, 0, 1]  # cat/a.png, cat/sub/c.png, dog/b.png
    assert d.x[0, :, 0, 0].tolist() == [255, 0, 0] and d.x[2, :, 0, 0].tolist() == [0, 255, 0]


def test_folder_flat_and_resize(tmp_path):
    _png(tmp_path / "a.png", (10, 20, 30), size=(12, 8))
    Image.new("L", (8, 20), 128).save(tmp_path / "b.jpg")  # grayscale -> RGB
    d = load_dataset("folder", str(tmp_path), image_size=4)
    assert d.labels is None and d.x.shape == (2, 3, 4, 4)
    assert d.x[0, :, 2, 2].tolist() == [10, 20, 30]
    assert (d.x[1].int() - 128).abs().max() <= 2
    with pytest.raises(EbmkitError, match="b.jpg"):  # mixed sizes need image_size
        load_dataset("folder", str(tmp_path))


def test_folder_errors(tmp_path):
    with pytest.raises(EbmkitError, match="no images found"):
        load_dataset("folder", str(tmp_path))
    with pytest.raises(EbmkitError, match="not a directory"):
        load_dataset("folder", str(tmp_path / "missing"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(EbmkitError, match="cannot read image"):
        load_dataset("folder", str(tmp_path))


# --- CIFAR-10 (binary), SVHN, CelebA, ImageNet 32 ---------------------------------------------------


def _cifar_records(labels, offset):
    # Each record: label byte, then 3072 pixel bytes with value (offset + i) % 256 at CHW index i.
    pix = (np.arange(3072) + offset) % 256
    return b"".join(bytes([y]) + pix.astype(np.uint8).tobytes() for y in labels)


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(_cifar_records([i, 9], offset=i))
    (folder / "test_batch.bin").write_bytes(_cifar_records([3], offset=0))
    (folder / "batches.meta.txt").write_text("\n".join("abcdefghij") + "\n\n")
    train = load_dataset("cifar10", str(tmp_path))
    assert train.x.shape == (10, 3, 32, 32) and train.labels.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]
    assert train.class_names == list("abcdefghij")
    x0 = train.x[0].flatten().long()  # CHW order, offset 1
    assert torch.equal(x0, (torch.arange(3072) + 1) % 256)
    assert train.x[0, 1, 0, 0] == (1024 + 1) % 256 and train.x[0, 0, 1, 0] == 33
    test = load_dataset("cifar10", str(folder), split="test")  # path may be the folder itself
    assert len(test) == 1 and test.labels.tolist() == [3]
    assert len(load_dataset("cifar10", str(tmp_path), split="all")) == 11
    small = load_dataset("cifar10", str(tmp_path), split="test", image_size=16)
    assert small.x.shape == (1, 3, 16, 16) and small.x.dtype == torch.uint8


def test_cifar10_missing(tmp_path):
    with pytest.raises(EbmkitError, match="cifar-10-batches-bin"):
        load_dataset("cifar10", str(tmp_path))
    (tmp_path / "cifar-10-batches-bin").mkdir()
    with pytest.raises(EbmkitError, match="data_batch_1.bin"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar10_python_version(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:  # stands in for torchvision's reader, which checks real checksums
        classes = CIFAR10_CLASSES

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.full((2, 32, 32, 3), 7 if train else 9, dtype=np.uint8)
            self.targets = [1, 2]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    (tmp_path / "cifar-10-batches-py").mkdir()
    d = load_dataset("cifar10", str(tmp_path), split="all")
    assert calls == [(str(tmp_path), True, False), (str(tmp_path), False, False)]
    assert d.x.shape == (4, 3, 32, 32) and d.x[:2].eq(7).all() and d.x[2:].eq(9).all()
    assert d.labels.tolist() == [1, 2, 1, 2] and d.class_names == CIFAR10_CLASSES

    (tmp_path / "cifar-10-batches-bin").mkdir()  # the binary version wins when both exist
    with pytest.raises(EbmkitError, match="data_batch_1.bin"):
        load_dataset("cifar10", str(tmp_path))


def test_svhn(tmp_path):
    x = np.arange(32 * 32 * 3 * 2, dtype=np.uint8).reshape(32, 32, 3, 2)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10], [4]], dtype=np.uint8)})
    d = load_dataset("svhn", str(tmp_path))
    assert d.x.shape == (2, 3, 32, 32) and d.labels.tolist() == [0, 4]
    assert d.x[1, 2, 5, 7] == x[5, 7, 2, 1]
    with pytest.raises(EbmkitError, match="test_32x32.mat"):
        load_dataset("svhn", str(tmp_path), split="test")


def test_celeba(tmp_path):
    write_celeba(tmp_path)
    d = load_dataset("celeba", str(tmp_path), split="all", image_size=8)
    assert d.x.shape == (3, 3, 8, 8) and d.labels is None
    assert d.attribute_names == ["Smiling", "Young"]
    assert d.attributes.tolist() == [[False, True], [True, True], [False, False]]
    # The crop holds only the pasted color (no black border).
    assert (d.x[2, 0].int() - 120).abs().max() <= 3 and (d.x[:, 2].int() - 200).abs().max() <= 6
    train = load_dataset("celeba", str(tmp_path))
    assert train.x.shape == (2, 3, 64, 64) and train.attributes.shape == (2, 2)
    assert load_dataset("celeba", str(tmp_path), split="test").attributes.tolist() == [[False, False]]
    (tmp_path / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(EbmkitError, match="000002.jpg"):
        load_dataset("celeba", str(tmp_path), split="all")


def test_celeba_missing(tmp_path):
    with pytest.raises(EbmkitError, match="list_attr_celeba.txt"):
        load_dataset("celeba", str(tmp_path))


def test_imagenet32(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    np.savez(tmp_path / "val_data.npz", data=data, labels=np.array([1, 1000]))
    d = load_dataset("imagenet32", str(tmp_path), split="test")
    assert d.x.shape == (2, 3, 32, 32) and d.labels.tolist() == [0, 999]
    assert torch.equal(d.x.flatten(1), torch.from_numpy(data))
    with pytest.raises(EbmkitError, match="train_data_batch_1.npz"):
        load_dataset("imagenet32", str(tmp_path))


# --- ShardedBatches -------------------------------------------------------------------------------


def test_sharded_batches_cover_each_epoch():
    n, bs, world = 24, 4, 2
    ranks = [ShardedBatches(n, bs, seed=5, rank=r, world=world) for r in range(world)]
    for _ in range(2):  # two epochs
        seen = torch.cat([b.next() for _ in range(n // world // bs) for b in ranks])
        assert seen.dtype == torch.int64 and sorted(seen.tolist()) == list(range(n))
    assert ranks[0].state_dict() == {"epoch": 1, "pos": 12}


def test_sharded_batches_determinism_and_resume():
    a, b = ShardedBatches(103, 10, seed=1), ShardedBatches(103, 10, seed=1)
    first = [a.next() for _ in range(25)]  # crosses epochs, tail of 3 dropped each epoch
    assert all(torch.equal(x, b.next()) for x in first)
    assert not torch.equal(first[0], ShardedBatches(103, 10, seed=2).next())
    for batch in first[:10]:
        assert len(set(batch.tolist())) == 10

    state = a.state_dict()
    c = ShardedBatches(103, 10, seed=1)
    c.load_state_dict(state)
    assert all(torch.equal(a.next(), c.next()) for _ in range(30))


def test_sharded_batches_too_small():
    with pytest.raises(EbmkitError, match="smaller than one batch"):
        ShardedBatches(10, 8, seed=0, world=2)
    with pytest.raises(EbmkitError, match="rank"):
        ShardedBatches(100, 8, seed=0, rank=2, world=2)
