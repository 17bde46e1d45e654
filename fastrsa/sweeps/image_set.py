"""The one image set of a sweep: read a batch at a time, never all at once, with a content hash.

    images = image_set("images/")            # a folder, a list of paths, or an array
    for start, pixels in images.batches(size=256, batch_size=64):
        ...                                  # pixels: (b, 3, 256, 256) float32 in [-1, 1]

Pixels are prepared exactly as `fastrsa.images.load_images` prepares them (the same reader).
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

__all__ = ["ImageSet", "image_set"]

# Images checked at once when an array is validated (float32 copies of uint8 are never made).
_CHECK_CHUNK = 64


class ImageSet:
    """N images, from files (read and resized per batch) or an array (kept as given).

    n: the number of images. fingerprint: sha256 hex of the content (computed on first use):
    for files the count and each file's size and bytes in order (read 1 MiB at a time), for an
    array its dtype, shape and bytes. size: the array's fixed image size, None for files (any
    size: they are resized). names: the image paths (str), None for an array.

    Holds in memory: the list of paths, or the array the caller gave (no copy).
    """

    def __init__(self, paths: list[Path] | None = None, array: np.ndarray | None = None):
        if (paths is None) == (array is None):
            raise TypeError("ImageSet takes paths or an array (use image_set(images))")
        self.paths = paths
        self.array = array
        if array is not None:
            self.n = int(len(array))
            self.size: int | None = int(
                array.shape[1] if array.dtype == np.uint8 else array.shape[2]
            )
            self.names: list[str] | None = None
        else:
            assert paths is not None
            self.n = len(paths)
            self.size = None
            self.names = [str(p) for p in paths]

    def __repr__(self) -> str:
        what = f"array {self.array.dtype} {self.array.shape}" if self.array is not None else "files"
        return f"ImageSet(n={self.n}, {what})"

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex of the images' content (see the class docstring)."""
        h = hashlib.sha256()
        if self.array is not None:
            arr = np.ascontiguousarray(self.array)
            h.update(f"array {arr.dtype.str} {arr.shape}\n".encode())
            h.update(arr.data.cast("B"))
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
        not. Arrays were checked when the set was made."""
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
        """ValueError when an array's images are not `size` x `size` (files are resized)."""
        if self.size is not None and self.size != size:
            raise ValueError(
                f"images: the array holds {self.size} x {self.size} images but {who} take "
                f"{size} x {size} (files are resized; arrays are not)"
            )

    def batches(self, size: int, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, pixels (b, 3, size, size) float32 in [-1, 1]) for consecutive batches of at
        most `batch_size` images, prepared as `fastrsa.images.load_images` prepares them.

        Holds one batch of pixels at a time (files: only that batch's files are read)."""
        batch_size = check_count(batch_size, "batch_size")
        self.check_size(size)
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            if self.array is not None:
                yield start, pixels_from_array(self.array[start:stop], size)
                continue
            assert self.paths is not None
            out = np.empty((stop - start, 3, size, size), dtype=np.float32)
            for k, path in enumerate(self.paths[start:stop]):
                out[k] = read_image(Path(path), size)
            yield start, out


def image_set(images: Any) -> ImageSet:
    """The ImageSet of a folder (its images by `fastrsa.images.image_paths`: sorted by name),
    a list of image paths, an ImageSet (returned as is), or an array as `load_images` takes it:
    uint8 (N, S, S, 3) in [0, 255] or float (N, 3, S, S) in [-1, 1].

    Errors name what is wrong: a missing folder or file, a folder without images, an array of
    another shape or dtype, NaN/Inf or values outside [-1, 1] (the array is checked a few
    images at a time, without a copy of it)."""
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
    raise TypeError(
        "images must be a folder, a list of image paths or a numpy array; got "
        f"{type(images).__name__}"
    )


def _checked_array(images: np.ndarray) -> np.ndarray:
    """The array, after load_images' checks (float arrays: a few images at a time)."""
    uint8 = images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
    floats = images.dtype.kind == "f" and images.ndim == 4 and images.shape[1] == 3
    if not (uint8 or floats):
        raise ValueError(
            "images: expected uint8 (N, S, S, 3) or float (N, 3, S, S) in [-1, 1]; got "
            f"{images.dtype} {images.shape}"
        )
    height, width = images.shape[1:3] if uint8 else images.shape[2:4]
    if height != width:
        layout = "(N, S, S, 3)" if uint8 else "(N, 3, S, S)"
        raise ValueError(f"images: expected {layout} square images; got {images.shape}")
    if len(images) == 0:
        raise ValueError(f"images is empty (shape {images.shape})")
    if uint8:  # every uint8 value is a pixel
        return images
    for start in range(0, len(images), _CHECK_CHUNK):
        try:
            pixels_from_array(images[start : start + _CHECK_CHUNK], height)
        except ValueError as err:  # its indices count from the chunk: say where it starts
            if start == 0:
                raise
            raise ValueError(f"{err} (in images[{start}:{start + _CHECK_CHUNK}])") from None
    return images
