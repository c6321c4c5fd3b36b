"""Bad user input files, as one table: each row builds a file in tmp_path, hands it to the library function
that reads it and expects a one-line EbmkitError (exit code 2) whose message names the file and the problem.
Then checks that good inputs still read as before."""

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ebmkit.data.files import load_images, read_images
from ebmkit.data.images import decode, load_folder
from ebmkit.errors import EbmkitError
from ebmkit.metrics.auroc import auroc, read_scores


def _png_bytes(w=8, h=6, color=(10, 20, 30)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (w, h), color).save(b, "PNG")
    return b.getvalue()


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with (almost) no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def raw(data: bytes | str, name: str):
    """A builder: a file `name` holding `data`."""
    def build(tmp_path):
        p = tmp_path / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p
    return build


def npz(**arrays):
    """A builder: x.npz holding `arrays` (saved as np.savez does, objects pickled)."""
    def build(tmp_path):
        np.savez(tmp_path / "x.npz", **arrays)
        return tmp_path / "x.npz"
    return build


def truncated_npz(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 3, 8, 8), np.uint8))
    (tmp_path / "x.npz").write_bytes((tmp_path / "x.npz").read_bytes()[:300])
    return tmp_path / "x.npz"


def corrupt_npz(tmp_path):
    """A well-formed zip whose compressed array data is damaged."""
    b = io.BytesIO()
    np.savez_compressed(b, images=np.arange(4096, dtype=np.uint8).reshape(4, 1, 32, 32))
    data = bytearray(b.getvalue())
    data[100:140] = bytes(40)
    (tmp_path / "x.npz").write_bytes(bytes(data))
    return tmp_path / "x.npz"


def npz_of_bytes(tmp_path):
    """A zip with an images.npy member that is not an .npy array."""
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as z:
        z.writestr("images.npy", b"hello")
    return tmp_path / "x.npz"


def folder(*sizes):
    """A builder: folder imgs/ with one PNG per (w, h), named a.png, b.png, ..."""
    def build(tmp_path):
        (tmp_path / "imgs").mkdir()
        for name, (w, h) in zip("abcdef", sizes):
            Image.new("RGB", (w, h)).save(tmp_path / "imgs" / f"{name}.png")
        return tmp_path / "imgs"
    return build


def in_folder(name: str, data: bytes):
    """A builder: folder imgs/ with one good PNG and the file `name` holding `data`."""
    def build(tmp_path):
        (tmp_path / "imgs").mkdir()
        (tmp_path / "imgs" / "a.png").write_bytes(_png_bytes())
        (tmp_path / "imgs" / name).write_bytes(data)
        return tmp_path / "imgs"
    return build


def all_images(p):
    return load_folder(p, "all", None)


def first_image(p):
    return decode([p])


U8 = np.zeros((2, 8, 8, 3), np.uint8)
F32 = np.zeros((2, 3, 8, 8), np.float32)
LIMIT = r"above the limit of 64 megapixels"

BAD = [
    # images (PIL): bombs, corrupt files, non-images with an image extension
    ("png-bomb", raw(_png_header(100_000, 100_000), "bomb.png"), read_images, rf"image \S*bomb\.png is over \d+ megapixels, {LIMIT}"),
    ("png-bomb-warning", raw(_png_header(10_000, 10_000), "bomb.png"), read_images, rf"bomb\.png is over \d+ megapixels, {LIMIT}"),
    ("png-above-limit", raw(_png_header(9000, 9000), "big.png"), read_images, rf"image \S*big\.png is 9000 x 9000 pixels, {LIMIT}"),
    ("png-bomb-in-folder", in_folder("b.png", _png_header(100_000, 100_000)), all_images, rf"b\.png is over \d+ megapixels, {LIMIT}"),
    ("png-big-decode", raw(_png_header(9000, 9000), "big.png"), first_image, rf"big\.png is 9000 x 9000 pixels, {LIMIT}"),
    ("png-header-only", raw(_png_header(64, 64), "x.png"), read_images, r"cannot read image \S*x\.png: image file is truncated"),
    ("png-truncated", raw(_png_bytes(64, 64)[:60], "x.png"), first_image, r"cannot read image \S*x\.png"),
    ("text-as-png", raw("hello", "x.png"), read_images, r"cannot read image \S*x\.png: cannot identify image file"),
    ("empty-jpg", raw(b"", "x.jpg"), read_images, r"cannot read image \S*x\.jpg"),
    ("text-in-folder", in_folder("b.webp", b"RIFF...."), all_images, r"cannot read image \S*b\.webp"),
    # folders
    ("empty-folder", folder(), all_images, r"no images found in \S*imgs"),
    ("empty-folder-read", folder(), read_images, r"no images found in \S*imgs"),
    ("mixed-sizes", folder((32, 32), (28, 28), (32, 32)), read_images,
     r"the 3 images in \S*imgs have 2 different sizes \(a\.png is 32x32, b\.png is 28x28\): "
     r"resize them to one size \(training: set data\.image_size\)$"),
    # .npz files
    ("npz-not-zip", raw(b"not a zip at all", "x.npz"), read_images, r"x\.npz is not a \.npz file \(not a zip archive\)"),
    ("npz-truncated", truncated_npz, read_images, r"x\.npz is not a \.npz file"),
    ("npz-corrupt-member", corrupt_npz, read_images, r"x\.npz is not a readable \.npz file"),
    ("npz-member-not-npy", npz_of_bytes, read_images, r"x\.npz: array 'images' holds raw bytes"),
    ("npz-no-arrays", npz(), read_images, r"x\.npz holds no arrays"),
    ("npz-unnamed-arrays", npz(a=U8, b=U8), read_images, r"x\.npz holds arrays \['a', 'b'\]: name the images 'images'"),
    ("npz-zero-images", npz(images=np.zeros((0, 8, 8, 3), np.uint8)), read_images, r"x\.npz: array 'images' holds no images \(shape \(0, 8, 8, 3\)\)"),
    ("npz-zero-width", npz(images=np.zeros((2, 3, 8, 0), np.uint8)), read_images, r"holds no images"),
    ("npz-object", npz(images=np.array([None, 1], dtype=object)), read_images, r"x\.npz holds Python objects, which ebmkit never unpickles"),
    ("npz-bool", npz(images=U8.astype(bool)), read_images, r"x\.npz: array 'images' holds bool; expected uint8 pixels or floats"),
    ("npz-complex", npz(images=F32.astype(complex)), read_images, r"x\.npz: array 'images' holds complex128"),
    ("npz-strings", npz(samples=np.array(["a", "b"])), read_images, r"x\.npz: array 'samples' holds <U1"),
    ("npz-nan", npz(images=np.where(np.arange(384).reshape(2, 3, 8, 8) == 5, np.nan, F32)), read_images,
     r"x\.npz: array 'images' holds 1 NaN or inf values"),
    ("npz-inf", npz(samples=np.full((2, 3, 8, 8), np.inf, np.float32)), load_images, r"x\.npz: array 'samples' holds 384 NaN or inf"),
    ("npz-floats-0-255", npz(images=np.full((2, 3, 8, 8), 200.0)), read_images,
     r"x\.npz: array 'images' holds floats from 200 to 200, not model space \[-1, 1\]; store 0\.\.255 pixels as uint8"),
    ("npz-int-out-of-range", npz(images=np.full((2, 3, 4, 4), 256, np.int16)), read_images,
     r"x\.npz: array 'images' holds integers from 256 to 256; pixels must be 0\.\.255"),
    ("npz-2-channels", npz(images=np.zeros((2, 8, 8, 2), np.uint8)), read_images,
     r"x\.npz: array 'images' has shape \(2, 8, 8, 2\); expected 1 \(grey\) or 3 \(RGB\) channels"),
    ("npz-5-channels", npz(images=np.zeros((2, 5, 8, 8), np.uint8)), read_images, r"shape \(2, 5, 8, 8\); expected 1 \(grey\) or 3"),
    ("npz-rgba", npz(images=np.zeros((2, 8, 8, 4), np.float32)), read_images, r"shape \(2, 8, 8, 4\); expected 1 \(grey\) or 3"),
    ("npz-3d-one-image", npz(images=np.zeros((8, 8, 3), np.uint8)), read_images,
     r"x\.npz: array 'images' has shape \(8, 8, 3\); expected images \(N, H, W, C\) or \(N, C, H, W\) \(one image"),
    ("npz-2d", npz(images=np.zeros((8, 8), np.uint8)), load_images, r"has shape \(8, 8\); expected images"),
    ("npz-5d", npz(images=np.zeros((1, 2, 3, 8, 8), np.uint8)), read_images,
     r"has shape \(1, 2, 3, 8, 8\); expected images \(N, H, W, C\) or \(N, C, H, W\)$"),
    # paths
    ("missing", lambda t: t / "nope.npz", read_images, r"nope\.npz not found"),
    ("wrong-suffix", raw("1 2 3", "x.txt"), read_images, r"x\.txt: expected a folder, an image \(\.png"),
    # score files for `ebmkit eval auroc`
    ("scores-nan", raw("0.5\n\nnan\n", "s.txt"), read_scores, r"score file \S*s\.txt, line 3: 'nan' is not a finite number"),
    ("scores-inf", raw("0.5\n-inf\n", "s.txt"), read_scores, r"s\.txt, line 2: '-inf' is not a finite number"),
    ("scores-word", raw("0.5\nhigh\n", "s.txt"), read_scores, r"s\.txt, line 2: 'high' is not a finite number"),
    ("scores-two-per-line", raw("0.5,0.7\n", "s.txt"), read_scores, r"s\.txt, line 1: '0\.5,0\.7' is not a finite number"),
    ("scores-empty", raw("", "s.txt"), read_scores, r"score file \S*s\.txt holds no scores"),
    ("scores-blank", raw("\n  \n", "s.txt"), read_scores, r"s\.txt holds no scores"),
    ("scores-header-only", raw("index,score\n", "s.csv"), read_scores, r"s\.csv holds no scores"),
    ("scores-csv-missing-value", raw("index,score\n0,1.5\n1,\n", "s.csv"), read_scores, r"s\.csv, line 3: '' is not a finite number"),
    ("scores-csv-short-row", raw("set,index,score\nin,0,1.5\nin,1\n", "s.csv"), read_scores, r"s\.csv, line 3: '' is not"),
    ("scores-csv-nan", raw("index,score\n0,1.5\n1,NaN\n", "s.csv"), read_scores, r"s\.csv, line 3: 'NaN' is not a finite"),
    ("scores-binary", raw(bytes(range(256)), "s.txt"), read_scores, r"score file \S*s\.txt is not a list of numbers \(binary data"),
    ("scores-npz", npz(images=U8), read_scores, r"x\.npz is not a list of numbers \(binary data"),
    ("scores-missing", lambda t: t / "s.csv", read_scores, r"score file \S*s\.csv not found"),
]


@pytest.mark.parametrize("build, read, message", [pytest.param(*row[1:], id=row[0]) for row in BAD])
def test_bad_input_file(tmp_path, build, read, message):
    path = build(tmp_path)
    with pytest.raises(EbmkitError, match=message) as info:
        read(path)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


@pytest.mark.parametrize("a, b, message", [
    ([0.1, float("nan")], [0.5], r"1 of the 2 in-distribution scores are NaN or inf \(first at position 2\)"),
    ([0.1], [0.5, 1.0, float("inf")], r"1 of the 3 out-of-distribution scores are NaN or inf \(first at position 3\)"),
    ([], [0.5], r"AUROC needs in- and out-of-distribution scores"),
])
def test_auroc_refuses_bad_scores(a, b, message):
    with pytest.raises(EbmkitError, match=message) as info:
        auroc(a, b)
    assert info.value.exit_code == 2


# --- good inputs still work ------------------------------------------------------------------------------

def test_uint8_npz_nhwc_nchw_and_grey(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)   # NHWC
    np.savez(tmp_path / "nhwc.npz", images=x)
    np.savez(tmp_path / "nchw.npz", samples=x.transpose(0, 3, 1, 2))
    np.savez(tmp_path / "grey.npz", x[..., :1])
    np.savez(tmp_path / "int.npz", images=x.astype(np.int64))                         # integers 0..255
    want = torch.from_numpy(x).permute(0, 3, 1, 2)
    for name in ("nhwc", "nchw", "int"):
        got = read_images(tmp_path / f"{name}.npz")
        assert got.dtype == torch.uint8 and got.is_contiguous() and torch.equal(got, want), name
    assert torch.equal(load_images(tmp_path / "grey.npz"), want[:, :1])


def test_float_npz_in_model_space(tmp_path):
    x = np.linspace(-1, 1, 2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    x[0, 0, 0, :2] = -1.3, 1.7                     # samples overshoot a little: clamped
    np.savez(tmp_path / "x.npz", samples=x)
    got = read_images(tmp_path / "x.npz")
    assert got.shape == (2, 3, 8, 8) and got.dtype == torch.uint8
    assert got[0, 0, 0, :2].tolist() == [0, 255] and got[1, 2, 7, 7] == 255 and got[0, 0, 0, 2] == 1
    np.savez(tmp_path / "nhwc.npz", images=x.transpose(0, 2, 3, 1).astype(np.float64))
    assert torch.equal(read_images(tmp_path / "nhwc.npz"), got)


def test_png_folder_and_file(tmp_path):
    folder((6, 4), (6, 4))(tmp_path)
    Image.new("RGB", (6, 4), (10, 20, 30)).save(tmp_path / "imgs" / "c.png")
    x = read_images(tmp_path / "imgs")
    assert x.shape == (3, 3, 4, 6) and x[2, :, 0, 0].tolist() == [10, 20, 30]
    assert torch.equal(read_images(tmp_path / "imgs" / "c.png"), x[2:])
    assert decode([tmp_path / "imgs" / "c.png"], image_size=2).shape == (1, 3, 2, 2)
    (tmp_path / "mixed").mkdir()
    mixed = folder((32, 32), (28, 28))(tmp_path / "mixed")
    assert read_images(mixed, image_size=8).shape == (2, 3, 8, 8)   # mixed sizes, resized: fine


def test_good_score_files(tmp_path):
    (tmp_path / "in.csv").write_text("set,index,score\nin,0,1.5\n\nin,1,-2e3\n")
    (tmp_path / "out.txt").write_text("3.0\n\n 4 \n")
    a, b = read_scores(tmp_path / "in.csv"), read_scores(tmp_path / "out.txt")
    assert a == [1.5, -2000.0] and b == [3.0, 4.0] and auroc(a, b) == 1.0
