"""Stimuli of a sweep: image sets of every kind (files in any mode, arrays of any range and size,
torch Datasets and DataLoaders) and text sets (.txt, .jsonl, lists): batches, raw batches,
fingerprints, errors, pickling (fastrsa.sweeps.image_set, fastrsa.sweeps.text_set)."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest

pytest.importorskip("PIL")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

from fastrsa.images import load_images  # noqa: E402
from fastrsa.sweeps.image_set import ImageSet, image_set  # noqa: E402
from fastrsa.sweeps.text_set import TextSet, text_set  # noqa: E402
from fastrsa.zoo.prep import read_rgb  # noqa: E402

N = 7
SIZE = 16


class ListDataset(Dataset):
    """A picklable map-style dataset over a list of items (any kind)."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _sizes(n):
    return [1, 3, n, n + 1]


def _starts(batches, n, size):
    got = list(batches)
    assert [s for s, _ in got] == list(range(0, n, size))
    assert [len(b) for _, b in got] == [min(size, n - s) for s in range(0, n, size)]
    return [b for _, b in got]


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


@pytest.fixture
def image_dir(tmp_path, rng):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(N):
        h, w = rng.integers(12, 40, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / f"img{i:02d}.png"
        )
    return folder


# ---- fingerprints as before, for files and arrays ------------------------------------------------


def _old_files_fingerprint(paths):
    h = hashlib.sha256(f"files {len(paths)}\n".encode())
    for p in paths:
        data = p.read_bytes()
        h.update(f"{len(data)}\n".encode() + data)
    return h.hexdigest()


def _old_array_fingerprint(arr):
    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(
        f"array {arr.dtype.str} {arr.shape}\n".encode() + arr.tobytes()
    ).hexdigest()


def test_fingerprints_of_files_and_arrays_are_unchanged(image_dir, rng):
    paths = sorted(image_dir.iterdir())
    assert image_set(image_dir).fingerprint == _old_files_fingerprint(paths)
    big = rng.standard_normal((150, 4, 5, 3)).astype(np.float32)  # more than one chunk
    view = big.transpose(0, 1, 3, 2)  # not contiguous: hashed a chunk at a time
    for arr in (
        rng.integers(0, 256, (N, 9, 11, 3), dtype=np.uint8),
        rng.uniform(-1, 1, (N, 3, SIZE, SIZE)).astype(np.float32),
        big * 300.0,
        view,
    ):
        assert image_set(arr).fingerprint == _old_array_fingerprint(arr)
    changed = big.copy()
    changed[140, 0, 0, 0] += 1.0
    assert image_set(changed).fingerprint != image_set(big).fingerprint


# ---- arrays: any range, any size; the Taskonomy checks moved to check_size / batches -------------


def test_float_arrays_of_any_range_and_size(rng):
    arr = rng.standard_normal((N, 2, 9, 13)) * 50.0  # float64, 2 channels, not square
    s = image_set(arr)
    assert s.prepared and s.size is None and s.names is None
    for size in _sizes(N):
        got = np.concatenate(_starts(s.raw_batches(size), N, size))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, arr.astype(np.float32))
    with pytest.raises(ValueError, match=r"expected \(N, 3, S, S\) square images") as e:
        next(s.batches(9, 2))
    _one_line(e)
    square = rng.uniform(-3, 3, (N, 3, SIZE, SIZE)).astype(np.float32)
    assert image_set(square).size == SIZE
    with pytest.raises(ValueError, match=r"float pixels must lie in \[-1, 1\]") as e:
        image_set(square).check_size(SIZE, "source 'a'")
    _one_line(e)
    with pytest.raises(ValueError, match="must lie in"):
        next(image_set(square).batches(SIZE, 2))


def test_uint8_arrays_of_any_size(rng):
    arr = rng.integers(0, 256, (N, 10, 17, 3), dtype=np.uint8)
    s = image_set(arr)
    assert not s.prepared and s.size is None
    for size in _sizes(N):
        images = [im for b in _starts(s.raw_batches(size), N, size) for im in b]
        assert all(im.mode == "RGB" and im.size == (17, 10) for im in images)
        np.testing.assert_array_equal(np.stack([np.asarray(im) for im in images]), arr)
    with pytest.raises(ValueError, match=r"expected \(N, S, S, 3\) square images"):
        s.check_size(10)
    square = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    got = np.concatenate(_starts(image_set(square).batches(SIZE, 3), N, 3))
    np.testing.assert_array_equal(got, load_images(square, SIZE))


def test_bad_arrays_are_refused_naming_what(rng):
    arr = rng.standard_normal((100, 3, 4, 4)).astype(np.float32)
    arr[70, 1, 2, 3] = np.nan  # in the second chunk: the index counts from the array
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at index \(70, 1, 2, 3\)\)") as e:
        image_set(arr)
    _one_line(e)
    for bad in (
        np.zeros((2, 8, 8), np.uint8),
        np.zeros((2, 8, 8, 4), np.uint8),
        np.zeros((2, 3, 8, 8), np.int32),
    ):
        with pytest.raises(ValueError, match="expected uint8 .N, H, W, 3. or float .N, C, H, W."):
            image_set(bad)
    with pytest.raises(ValueError, match="images is empty"):
        image_set(np.zeros((0, 3, 4, 4), np.float32))
    with pytest.raises(TypeError, match="images must be .*torch Dataset"):
        image_set(3)


# ---- files: raw batches in any mode --------------------------------------------------------------


def test_files_raw_batches_in_order(image_dir):
    s = image_set(image_dir)
    assert not s.prepared and s.names is not None
    want = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(image_dir.iterdir())]
    for size in _sizes(N):
        images = [im for b in _starts(s.raw_batches(size), N, size) for im in b]
        assert [im.mode for im in images] == ["RGB"] * N
        for im, w in zip(images, want, strict=True):
            np.testing.assert_array_equal(np.asarray(im), w)
    got = np.concatenate(_starts(s.batches(SIZE, 3), N, 3))  # the Taskonomy path as before
    np.testing.assert_array_equal(got, load_images(image_dir, SIZE))


def test_files_of_every_mode_come_out_rgb(tmp_path, rng):
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(gray, mode="L").save(tmp_path / "a_gray.png")
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "b_rgba.png")
    Image.fromarray(rgba[..., :3]).quantize(16).save(tmp_path / "c_palette.png")
    Image.fromarray(deep).save(tmp_path / "d_16bit.png")
    paths = sorted(tmp_path.glob("*.png"))
    assert Image.open(paths[2]).mode == "P" and Image.open(paths[3]).mode.startswith("I")
    (batch,) = [b for _, b in image_set(paths).raw_batches(8)]
    assert [im.mode for im in batch] == ["RGB"] * 4
    assert [im.size for im in batch] == [(11, 9)] * 4
    np.testing.assert_array_equal(np.asarray(batch[0]), np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(np.asarray(batch[1]), rgba[..., :3])
    for im, p in zip(batch, paths, strict=True):
        np.testing.assert_array_equal(np.asarray(im), np.asarray(read_rgb(p)))
    assert np.asarray(batch[3]).max() > 200  # 16-bit scaled to 8 bits, not clipped at 255


# ---- torch datasets and loaders ------------------------------------------------------------------


def _dataset_fingerprint(images):
    h = hashlib.sha256(f"dataset {len(images)}\n".encode())
    for im in images:
        if isinstance(im, Image.Image):
            h.update(f"pil {im.mode} {im.size[0]} {im.size[1]}\n".encode() + im.tobytes())
        else:
            a = np.ascontiguousarray(im)
            h.update(f"array {a.dtype.str} {a.shape}\n".encode() + a.tobytes())
    return h.hexdigest()


def test_dataset_of_pil_images(image_dir):
    pils = [Image.open(p).convert("RGB") for p in sorted(image_dir.iterdir())]
    ds = ListDataset([(im, k) for k, im in enumerate(pils)])  # (image, label) items
    s = image_set(ds)
    assert s.n == N and not s.prepared and s.names is None
    assert s.fingerprint == _dataset_fingerprint(pils)
    for size in _sizes(N):
        images = [im for b in _starts(s.raw_batches(size), N, size) for im in b]
        for im, w in zip(images, pils, strict=True):
            assert im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), np.asarray(w))
    # the Taskonomy path: as load_images reads the same RGB images from files
    got = np.concatenate(_starts(s.batches(SIZE, 3), N, 3))
    np.testing.assert_array_equal(got, load_images(image_dir, SIZE))
    other = ListDataset([{"image": im} for im in pils[:-1]] + [{"image": pils[0]}])
    assert image_set(other).fingerprint != s.fingerprint
    assert image_set(ListDataset([{"image": im} for im in pils])).fingerprint == s.fingerprint


def test_dataset_of_tensors_and_its_loader(rng):
    x = torch.from_numpy(rng.standard_normal((N, 3, 6, 10)).astype(np.float32) * 4)
    ds = TensorDataset(x, torch.arange(N))
    s = image_set(ds)
    assert s.prepared and s.n == N
    assert s.fingerprint == _dataset_fingerprint(list(x.numpy()))
    for size in _sizes(N):
        got = np.concatenate(_starts(s.raw_batches(size), N, size))
        np.testing.assert_array_equal(got, x.numpy())
    loader = image_set(DataLoader(ds, batch_size=4, shuffle=False))
    assert loader.n == N and loader.fingerprint == s.fingerprint
    x2 = x.clone()
    x2[3, 0, 0, 0] += 1
    assert image_set(TensorDataset(x2)).fingerprint != s.fingerprint
    dicts = ListDataset([{"pixel_values": t} for t in x])
    assert image_set(dicts).fingerprint == s.fingerprint
    # the Taskonomy path refuses other shapes and the range
    with pytest.raises(ValueError, match=r"got float32 \(2, 3, 6, 10\) \(in dataset\[0:2\]\)"):
        next(s.batches(6, 2))
    with pytest.raises(ValueError, match=r"must lie in .*\(in dataset\[0:2\]\)"):
        next(image_set(TensorDataset(x[:, :, :, :6])).batches(6, 2))
    fine = TensorDataset(x[:, :, :, :6].clamp(-1, 1))
    got = np.concatenate(_starts(image_set(fine).batches(6, 3), N, 3))
    np.testing.assert_array_equal(got, fine.tensors[0].numpy())


def test_dataset_of_uint8_tensors_are_images(rng):
    x = torch.from_numpy(rng.integers(0, 256, (N, 3, 5, 8), dtype=np.uint8))
    s = image_set(ListDataset(list(x)))
    assert not s.prepared
    images = [im for _, b in s.raw_batches(3) for im in b]
    np.testing.assert_array_equal(
        np.stack([np.asarray(im) for im in images]), x.permute(0, 2, 3, 1)
    )


def test_dataset_of_other_modes(rng):
    index = rng.integers(0, 4, (5, 6), dtype=np.uint8)
    colours = rng.integers(0, 256, (2, 12), dtype=np.uint8)
    pals = []
    for c in colours:
        im = Image.fromarray(index, mode="L").convert("P")
        im.putpalette(c.tolist())
        pals.append(im)
    gray = Image.fromarray(index * 60, mode="L")
    a, b = image_set(ListDataset([pals[0], gray])), image_set(ListDataset([pals[1], gray]))
    assert a.fingerprint != b.fingerprint  # same indices, another palette
    (batch,) = [x for _, x in a.raw_batches(4)]
    assert [im.mode for im in batch] == ["RGB", "RGB"]
    np.testing.assert_array_equal(np.asarray(batch[0]), colours[0].reshape(4, 3)[index])
    np.testing.assert_array_equal(np.asarray(batch[1]), np.repeat((index * 60)[..., None], 3, 2))


def test_dataset_errors_name_what(rng, image_dir):
    ds = TensorDataset(torch.zeros(N, 3, 4, 4))
    with pytest.raises(ValueError, match=r"shuffle=True") as e:
        image_set(DataLoader(ds, shuffle=True))
    _one_line(e)
    with pytest.raises(ValueError, match="sampler SubsetRandomSampler"):
        image_set(DataLoader(ds, sampler=torch.utils.data.SubsetRandomSampler([0, 1])))
    with pytest.raises(ValueError, match="is empty"):
        image_set(ListDataset([]))
    with pytest.raises(TypeError, match=r"dataset\[0\] holds str"):
        image_set(ListDataset(["a.png"]))
    with pytest.raises(TypeError, match=r"dataset\[0\] is a dict without an image key"):
        image_set(ListDataset([{"label": 1}]))
    pil = Image.open(next(image_dir.iterdir())).convert("RGB")
    mixed = image_set(ListDataset([torch.zeros(3, 4, 4), pil]))
    with pytest.raises(TypeError, match=r"dataset\[1\] is not like dataset\[0\]"):
        list(mixed.raw_batches(2))
    ragged = image_set(ListDataset([torch.zeros(3, 4, 4), torch.zeros(3, 5, 4)]))
    with pytest.raises(ValueError, match=r"dataset\[1\] has shape \(3, 5, 4\)"):
        list(ragged.raw_batches(2))
    nan = image_set(ListDataset([torch.zeros(3, 4, 4), torch.full((3, 4, 4), float("nan"))]))
    with pytest.raises(ValueError, match=r"dataset\[1\] holds NaN or Inf"):
        list(nan.raw_batches(2))


def test_image_sets_pickle(image_dir, rng):
    sets = [
        image_set(image_dir),
        image_set(rng.standard_normal((N, 3, 5, 7))),
        image_set(ListDataset([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])),
    ]
    for s in sets:
        before = s.fingerprint
        back = pickle.loads(pickle.dumps(s))
        assert isinstance(back, ImageSet) and back.n == s.n and back.fingerprint == before
        fresh = pickle.loads(pickle.dumps(image_set(s)))
        del fresh.__dict__["fingerprint"]  # recomputed from the unpickled content
        assert fresh.fingerprint == before


# ---- texts ---------------------------------------------------------------------------------------

TEXTS = ["a cat sat", "zwei Hunde", "ünïcödé ✓", "the fourth", "five", "six", "seven"]


def _text_fingerprint(texts):
    h = hashlib.sha256(f"texts {len(texts)}\n".encode())
    for t in texts:
        b = t.encode()
        h.update(f"{len(b)}\n".encode() + b)
    return h.hexdigest()


@pytest.mark.parametrize(
    "name, data",
    [
        ("lf.txt", "\n".join(TEXTS).encode() + b"\n"),
        ("no_final_newline.txt", "\n".join(TEXTS).encode()),
        ("crlf_bom.txt", b"\xef\xbb\xbf" + "\r\n".join(TEXTS).encode() + b"\r\n"),
        ("strings.jsonl", "\n".join(json.dumps(t) for t in TEXTS).encode() + b"\n"),
        ("objects.jsonl", "\r\n".join(json.dumps({"id": 1, "text": t}) for t in TEXTS).encode()),
    ],
)
def test_text_files(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    s = text_set(path)
    assert s.n == len(TEXTS) and s.names is None
    s.check()
    for size in _sizes(len(TEXTS)):
        got = [t for b in _starts(s.batches(size), len(TEXTS), size) for t in b]
        assert got == TEXTS
    assert s.fingerprint == _text_fingerprint(TEXTS) == text_set(TEXTS).fingerprint
    assert text_set(str(path)).fingerprint == s.fingerprint
    back = pickle.loads(pickle.dumps(s))
    assert list(back) == TEXTS and back.fingerprint == s.fingerprint


def test_text_lists():
    s = text_set(tuple(TEXTS))
    assert text_set(s) is s and isinstance(s, TextSet)
    for size in _sizes(len(TEXTS)):
        assert [t for b in _starts(s.batches(size), len(TEXTS), size) for t in b] == TEXTS
    changed = [*TEXTS[:-1], "eight"]
    assert text_set(changed).fingerprint != s.fingerprint
    assert text_set(TEXTS[:-1]).fingerprint != s.fingerprint
    assert pickle.loads(pickle.dumps(s)).fingerprint == s.fingerprint


@pytest.mark.parametrize(
    "name, data, error, match",
    [
        ("gap.txt", b"one\ntwo\n\nfour\n", ValueError, r"gap.txt line 3 is empty"),
        ("spaces.txt", b"one\r\n  \r\nthree", ValueError, r"spaces.txt line 2 is empty"),
        ("bad.txt", b"one\ntw\xff\n", ValueError, r"bad.txt is not UTF-8 .*byte offset 6"),
        ("bad.jsonl", b'"a"\n{"text": \n', ValueError, r"bad.jsonl line 2 is not JSON"),
        ("keys.jsonl", b'"a"\n{"body": "x"}\n', ValueError, r'line 2 has no "text" field'),
        ("num.jsonl", b'"a"\n"b"\n3\n', ValueError, r"num.jsonl line 3 holds a number"),
        ("blank.jsonl", b'"a"\n""\n', ValueError, r"blank.jsonl line 2 is empty"),
    ],
)
def test_bad_text_files_name_the_line(tmp_path, name, data, error, match):
    path = tmp_path / name
    path.write_bytes(data)
    s = text_set(path)  # counted, not yet read
    with pytest.raises(error, match=match) as e:
        s.check()
    _one_line(e)
    with pytest.raises(error, match=match):
        list(s.batches(2))


def test_text_set_errors(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf")
    for name in ("empty.txt", "bom.txt"):
        with pytest.raises(ValueError, match=f"{name} holds no texts"):
            text_set(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such file: .*none.txt"):
        text_set(tmp_path / "none.txt")
    with pytest.raises(ValueError, match=r"a.csv is not a .txt or .jsonl file"):
        text_set(tmp_path / "a.csv")
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        text_set(["a", ""])
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        text_set(["a", "b", 3])
    with pytest.raises(ValueError, match="texts is an empty list"):
        text_set([])
    with pytest.raises(TypeError, match="texts must be"):
        text_set(3)
    with pytest.raises(ValueError, match="batch_size"):
        next(text_set(["a"]).batches(0))
    path = tmp_path / "grows.txt"
    path.write_text("a\nb\n")
    s = text_set(path)
    path.write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="changed: it held 2 texts, now 3"):
        list(s.batches(5))
