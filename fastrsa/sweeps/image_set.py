"""The one image set of a sweep: read a batch at a time, never all at once, with a content hash.

    images = image_set("images/")            # a folder, a list of paths, an array, a Dataset
    for start, pixels in images.batches(size=256, batch_size=64):
        ...                                  # pixels: (b, 3, 256, 256) float32 in [-1, 1]
    for start, batch in images.raw_batches(batch_size=64):
        ...                                  # RGB PIL images, or float32 (b, C, H, W) as given

`batches` prepares pixels the Taskonomy way, exactly as `fastrsa.images.load_images` does (the
same reader), for ONNX and Taskonomy encoders; `raw_batches` gives the images to a model's own
preprocessing (timm, torchvision, Hugging Face), or arrays the user prepared, as they are.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_count
from ..images import image_paths, pixels_from_array, read_image
from ..zoo.prep import open_rgb, read_rgb
from .image_items import dataset_of, hash_item, item_image, item_kind

__all__ = ["ImageSet", "image_set"]

# Images checked at once when an array is validated (float32 copies of uint8 are never made).
_CHECK_CHUNK = 64


class ImageSet:
    """N images, from files (read per batch), an array (kept as given) or a torch Dataset (its
    items read per batch, in index order).

    n: the number of images. fingerprint: sha256 hex of the content (computed on first use):
    for files the count and each file's size and bytes in order (read 1 MiB at a time), for an
    array its dtype, shape and bytes, for a dataset "dataset N\\n" and each item's image (PIL:
    mode, size, bytes; array or tensor: dtype, shape, bytes): one pass over the dataset.
    size: a square array's image size, else None (files and datasets: any size). names: the
    image paths (str), None otherwise. prepared: True when the images are float pixels (a float
    array, a dataset of float tensors) that a model takes as given, with no preprocessing.

    Holds in memory: the list of paths, or the array or dataset the caller gave (no copy).
    Picklable when the dataset is.
    """

    def __init__(
        self,
        paths: list[Path] | None = None,
        array: np.ndarray | None = None,
        dataset: Any = None,
    ):
        if sum(x is not None for x in (paths, array, dataset)) != 1:
            raise TypeError("ImageSet takes paths, an array or a dataset (use image_set(images))")
        self.paths = paths
        self.array = array
        self.dataset = dataset
        self.names: list[str] | None = None
        self.size: int | None = None
        self.prepared = False
        self._taskonomy_checked = False
        if array is not None:
            self.n = int(len(array))
            self.prepared = array.dtype != np.uint8
            height, width = array.shape[1:3] if array.dtype == np.uint8 else array.shape[2:4]
            self.size = int(height) if height == width else None
        elif paths is not None:
            self.n = len(paths)
            self.names = [str(p) for p in paths]
        else:
            self.n = len(dataset)
            if self.n == 0:
                raise ValueError(f"images: the dataset {type(dataset).__name__} is empty")
            self.prepared = item_kind(self._item(0)) == "pixels"

    def __repr__(self) -> str:
        if self.array is not None:
            what = f"array {self.array.dtype} {self.array.shape}"
        else:
            what = "files" if self.paths is not None else f"dataset {type(self.dataset).__name__}"
        return f"ImageSet(n={self.n}, {what})"

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex of the images' content (see the class docstring)."""
        h = hashlib.sha256()
        if self.array is not None:
            arr = self.array
            h.update(f"array {arr.dtype.str} {arr.shape}\n".encode())
            for start in range(0, max(len(arr), 1), _CHECK_CHUNK):  # C order, a chunk at a time
                h.update(np.ascontiguousarray(arr[start : start + _CHECK_CHUNK]).data.cast("B"))
            return h.hexdigest()
        if self.dataset is not None:
            h.update(f"dataset {self.n}\n".encode())
            for i in range(self.n):
                hash_item(h, self._item(i))
            return h.hexdigest()
        assert self.paths is not None
        h.update(f"files {len(self.paths)}\n".encode())
        for path in self.paths:
            try:
                with open(path, "rb") as f:
                    h.update(f"{os.fstat(f.fileno()).st_size}\n".encode())
                    while block := f.read(1 << 20):
                        h.update(block)
            except FileNotFoundError:
                raise FileNotFoundError(f"images: no such file: {path}") from None
            except OSError as err:
                raise ValueError(f"images: cannot read {path} ({err.strerror})") from None
        return h.hexdigest()

    def check(self) -> None:
        """Before any work: every image file opens as an image (headers only: pixels are
        decoded a batch at a time); ValueError / FileNotFoundError naming the first that does
        not. Arrays were checked when the set was made; a dataset's items are read when used."""
        if self.paths is None:
            return
        import warnings

        from PIL import Image

        for path in self.paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(path) as img:
                        img.size  # noqa: B018 (the header is read)
            except FileNotFoundError:
                raise FileNotFoundError(f"images: no such file: {path}") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ValueError(
                    f"images: {path} declares more pixels than PIL's limit "
                    "Image.MAX_IMAGE_PIXELS (a decompression bomb?)"
                ) from None
            except Exception as err:  # PIL raises many types for files that are not images
                reason = " ".join(str(err).split()) or type(err).__name__
                raise ValueError(f"images: {path} is not a readable image ({reason})") from None

    def check_size(self, size: int, who: str = "the models") -> None:
        """Before any work, for an encoder that takes Taskonomy pixels (b, 3, size, size) in
        [-1, 1] (ONNX, Taskonomy): ValueError when an array does not hold them (another size,
        not square, float values outside [-1, 1], checked a few images at a time). Files are
        resized; a dataset's items are checked as they are read (`batches`)."""
        arr = self.array
        if arr is None:
            return
        uint8 = arr.dtype == np.uint8
        height, width = arr.shape[1:3] if uint8 else arr.shape[2:4]
        if height != width:
            layout = "(N, S, S, 3)" if uint8 else "(N, 3, S, S)"
            raise ValueError(f"images: expected {layout} square images; got {arr.shape}")
        if self.size != size:
            raise ValueError(
                f"images: the array holds {self.size} x {self.size} images but {who} take "
                f"{size} x {size} (files are resized; arrays are not)"
            )
        if uint8 or self._taskonomy_checked:
            return
        for start in range(0, len(arr), _CHECK_CHUNK):
            try:
                pixels_from_array(arr[start : start + _CHECK_CHUNK], size)
            except ValueError as err:  # its indices count from the chunk: say where it starts
                if start == 0:
                    raise
                raise ValueError(f"{err} (in images[{start}:{start + _CHECK_CHUNK}])") from None
        self._taskonomy_checked = True

    def batches(self, size: int, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, pixels (b, 3, size, size) float32 in [-1, 1]) for consecutive batches of at
        most `batch_size` images, prepared as `fastrsa.images.load_images` prepares them (a
        dataset's PIL images: RGB, bilinear resize, p / 127.5 - 1; its float items: as an
        array's, checked). Holds one batch of pixels at a time (files: only that batch's
        files are read)."""
        batch_size = check_count(batch_size, "batch_size")
        self.check_size(size)
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            if self.array is not None:
                yield start, pixels_from_array(self.array[start:stop], size)
                continue
            if self.dataset is not None:
                yield start, self._dataset_pixels(start, stop, size)
                continue
            assert self.paths is not None
            out = np.empty((stop - start, 3, size, size), dtype=np.float32)
            for k, path in enumerate(self.paths[start:stop]):
                out[k] = read_image(Path(path), size)
            yield start, out

    def raw_batches(self, batch_size: int) -> Iterator[tuple[int, Any]]:
        """(start, images) for consecutive batches of at most `batch_size` images, for a
        model's own preprocessing: a list of RGB PIL images (files and uint8 arrays of any
        size and mode; a dataset's PIL or uint8 items), or, when `prepared`, float32 (b, C, H,
        W) pixels as given (a float array's slice; a dataset's float items stacked: they must
        share a shape). Holds one batch."""
        batch_size = check_count(batch_size, "batch_size")
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            if self.array is not None:
                chunk = self.array[start:stop]
                if self.prepared:
                    yield start, chunk.astype(np.float32, copy=False)
                else:
                    from PIL import Image

                    yield start, [Image.fromarray(np.ascontiguousarray(a)) for a in chunk]
            elif self.dataset is not None:
                items = [
                    self._item(i, "pixels" if self.prepared else "image")
                    for i in range(start, stop)
                ]
                if self.prepared:
                    yield start, _stack(items, start)
                else:
                    yield start, [self._pil(x, start + k) for k, x in enumerate(items)]
            else:
                assert self.paths is not None
                yield start, [read_rgb(Path(p)) for p in self.paths[start:stop]]

    def _item(self, index: int, kind: str | None = None) -> Any:
        """dataset[index]'s image; TypeError when it is not of `kind` (the set's kind)."""
        image = item_image(self.dataset[index], index)
        if kind is not None and item_kind(image) != kind:
            first = "float pixels" if kind == "pixels" else "images (PIL or uint8)"
            raise TypeError(
                f"images: dataset[{index}] is not like dataset[0] ({first}); a dataset's items "
                "must all be float pixels or all images"
            )
        return image

    def _pil(self, image: Any, index: int) -> Any:
        """An item's image as an RGB PIL image (a uint8 (C, H, W) array converted)."""
        from PIL import Image

        if isinstance(image, np.ndarray):
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
            image = Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)
        return open_rgb(image, f"dataset[{index}]")

    def _dataset_pixels(self, start: int, stop: int, size: int) -> np.ndarray:
        """Items start..stop as Taskonomy pixels (b, 3, size, size) float32 in [-1, 1]."""
        if self.prepared:
            items = [self._item(i, "pixels") for i in range(start, stop)]
            try:
                return pixels_from_array(_stack(items, start), size)
            except ValueError as err:
                raise ValueError(f"{err} (in dataset[{start}:{stop}])") from None
        from PIL import Image

        out = np.empty((stop - start, 3, size, size), dtype=np.float32)
        for k, i in enumerate(range(start, stop)):
            rgb = self._pil(self._item(i, "image"), i).resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
            out[k] = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        return out


def _stack(items: list[np.ndarray], start: int) -> np.ndarray:
    """Float (C, H, W) items as one float32 (b, C, H, W) array; ValueError naming the first
    item whose shape differs from the batch's first, or that holds NaN or Inf."""
    for k, x in enumerate(items):
        if x.shape != items[0].shape:
            raise ValueError(
                f"images: dataset[{start + k}] has shape {x.shape} but dataset[{start}] has "
                f"{items[0].shape}; float items must share a shape (resize them in the dataset)"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"images: dataset[{start + k}] holds NaN or Inf")
    return np.stack(items).astype(np.float32, copy=False)


def image_set(images: Any) -> ImageSet:
    """The ImageSet of a folder (its images by `fastrsa.images.image_paths`: sorted by name),
    a list of image paths, an ImageSet (returned as is), an array: uint8 (N, H, W, 3) in [0,
    255], or float (N, C, H, W) of any range (pixels prepared by the user, taken as given), or a
    map-style torch Dataset (items: a PIL image, a float (C, H, W) or uint8 (3, H, W) tensor or
    array, alone, first in a tuple or under "image" / "pixel_values" in a dict) or a DataLoader
    over one (its dataset, read in index order; a shuffling loader is refused).

    Errors name what is wrong: a missing folder or file, a folder without images, an array of
    another shape or dtype, NaN/Inf (the array is checked a few images at a time, without a
    copy of it). Encoders that take Taskonomy pixels refuse float arrays outside [-1, 1] and
    non-square arrays (`ImageSet.check_size`)."""
    if isinstance(images, ImageSet):
        return images
    if isinstance(images, np.ndarray):
        return ImageSet(array=_checked_array(images))
    if isinstance(images, (str, os.PathLike)):
        return ImageSet(paths=image_paths(images))
    if isinstance(images, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in images):
        if not images:
            raise ValueError("images is an empty list")
        paths = [Path(p) for p in images]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"images: no such file: {p}")
            if not p.is_file():
                raise ValueError(f"images: {p} is not a file")
        return ImageSet(paths=paths)
    dataset = dataset_of(images)
    if dataset is not None:
        return ImageSet(dataset=dataset)
    raise TypeError(
        "images must be a folder, a list of image paths, a numpy array or a torch Dataset / "
        f"DataLoader; got {type(images).__name__}"
    )


def _checked_array(images: np.ndarray) -> np.ndarray:
    """The array, after the checks of its layout and, for floats, NaN/Inf (a chunk at a time)."""
    uint8 = images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
    floats = images.dtype.kind == "f" and images.ndim == 4 and images.shape[1] >= 1
    if not (uint8 or floats):
        raise ValueError(
            "images: expected uint8 (N, H, W, 3) or float (N, C, H, W); got "
            f"{images.dtype} {images.shape}"
        )
    if len(images) == 0 or 0 in images.shape:
        raise ValueError(f"images is empty (shape {images.shape})")
    if uint8:  # every uint8 value is a pixel
        return images
    for start in range(0, len(images), _CHECK_CHUNK):
        bad = ~np.isfinite(images[start : start + _CHECK_CHUNK])
        if bad.any():
            first = np.argwhere(bad)[0]
            first[0] += start
            raise ValueError(
                f"images holds NaN or Inf (first at index {tuple(int(i) for i in first)})"
            )
    return images
