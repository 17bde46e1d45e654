"""Image sets as pixels: the image files of a folder, one image file read and resized, an array
checked, all as (3, S, S) float32 in [-1, 1] (pixel / 127.5 - 1 for 8-bit images).

    pixels = load_images("images/", size=256)     # (N, 3, 256, 256) float32

The one reader of images in fastrsa: `fastrsa.features.extract`, the sweep's image set
(`fastrsa.sweeps.image_set`) and the attribution measures all prepare pixels here, the same way.
PIL is imported when an image file is read.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import one_line

__all__ = [
    "IMAGE_SUFFIXES",
    "image_paths",
    "load_images",
    "load_image",
    "load_images_and_names",
    "pixels_from_array",
    "read_image",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def image_paths(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder, sorted by name.

    Hidden files (".name") and sub-folders are skipped; any other file that is not an image, and
    a symbolic link that dangles or loops, is an error naming it (never skipped silently).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"images: no such folder: {folder}")
    if not folder.is_dir():
        raise ValueError(f"images: {folder} is a file; expected a folder of images")
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise ValueError(f"images: cannot list {folder} ({err.strerror})") from None
    files = []
    for p in entries:
        try:
            st = p.stat()  # follows symbolic links: a dangling or looping one raises here
        except OSError as err:
            what = "a symbolic link that dangles or loops" if p.is_symlink() else "unreadable"
            raise ValueError(f"images: {p} is {what} ({err.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"images: {p} is not a regular file")
        files.append(p)
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise ValueError(f"images: {folder} holds files that are not images: {others[:5]}")
    if not files:
        raise ValueError(f"images: {folder} holds no images")
    return files


def load_images(images: Any, size: int = 256) -> np.ndarray:
    """Images as (N, 3, size, size) float32 in [-1, 1] (pixel / 127.5 - 1 for 8-bit images).

    images: a folder, a list of paths (read with PIL, converted to RGB, resized to size x size;
    16-bit images are scaled from 0..65535, so they land in [-1, 1] too), or an array: uint8
    (N, size, size, 3) in [0, 255], or float (N, 3, size, size) already in [-1, 1] (values
    outside it are refused). An image whose declared size exceeds PIL's Image.MAX_IMAGE_PIXELS
    (a decompression bomb) is refused without decoding it.
    """
    return load_images_and_names(images, size)[0]


def load_images_and_names(images: Any, size: int) -> tuple[np.ndarray, list[str] | None]:
    """(pixels as `load_images` gives them, the images' names for messages: their paths, or
    None for an array)."""
    if isinstance(images, np.ndarray):
        return pixels_from_array(images, size), None
    if isinstance(images, (str, os.PathLike)):
        paths = image_paths(images)
    elif isinstance(images, (list, tuple)) and all(
        isinstance(p, (str, os.PathLike)) for p in images
    ):
        paths = [Path(p) for p in images]
        if not paths:
            raise ValueError("images is an empty list")
    else:
        raise TypeError(
            "images must be a folder, a list of image paths or a numpy array; got "
            f"{type(images).__name__}"
        )
    out = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = read_image(Path(path), size)
    return out, [str(p) for p in paths]


def read_image(path: Path, size: int) -> np.ndarray:
    """One image file as (3, size, size) float32 in [-1, 1]: RGB, resized (bilinear) to size x
    size; 8-bit pixels p as p / 127.5 - 1, 16-bit gray as p / 32767.5 - 1 on all three
    channels. ValueError naming the file when it is not a readable image, holds 32-bit or float
    pixels, or declares more pixels than PIL's Image.MAX_IMAGE_PIXELS."""
    from PIL import Image

    img = load_image(path)
    if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
        gray = np.asarray(img, dtype=np.float32)  # 0..65535
        small = Image.fromarray(gray, mode="F").resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
        plane = np.asarray(small, dtype=np.float32) / 32767.5 - 1.0
        return np.repeat(plane[None], 3, axis=0)
    if img.mode in ("I", "F"):
        raise ValueError(
            f"images: {path} holds {'32-bit integer' if img.mode == 'I' else 'float'}"
            " pixels of unknown range; save it as an 8- or 16-bit image"
        )
    try:
        rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
    except (ValueError, OSError) as err:  # a mode PIL cannot convert (e.g. "LAB")
        raise ValueError(f"images: {path} is not a readable image ({one_line(err)})") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def load_image(path: str | os.PathLike) -> Any:
    """One image file as a PIL image, decoded (`load()`) and its file closed, in the file's own
    mode (`format` kept: "PNG", "JPEG", ...). FileNotFoundError when it is missing; ValueError
    "images: PATH is not a readable image (why)" when PIL cannot decode it, and naming PIL's
    Image.MAX_IMAGE_PIXELS when it declares more pixels (a decompression bomb; refused before
    decoding)."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"images: no such file: {path}")
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"images: {path} declares more pixels than PIL's limit Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS} (a decompression bomb?); raise the limit if it is genuine"
        ) from None
    except FileNotFoundError:
        raise FileNotFoundError(f"images: no such file: {path}") from None
    except (ValueError, OSError, SyntaxError, EOFError, struct.error, zlib.error) as err:
        # PIL's decoders raise all of these for broken files (UnidentifiedImageError is OSError)
        raise ValueError(f"images: {path} is not a readable image ({one_line(err)})") from None
    return img


def pixels_from_array(images: np.ndarray, size: int) -> np.ndarray:
    """An array of images as (N, 3, size, size) float32 in [-1, 1]: uint8 (N, size, size, 3)
    scaled by p / 127.5 - 1, or float (N, 3, size, size) checked (finite, in [-1, 1]) and
    returned without a copy when float32. ValueError for another shape or dtype, NaN/Inf or
    values outside [-1, 1] (naming the first index)."""
    if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        if images.shape[1:3] != (size, size):
            raise ValueError(f"images: expected (N, {size}, {size}, 3); got {images.shape}")
        return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    if images.dtype.kind == "f" and images.ndim == 4 and images.shape[1:] == (3, size, size):
        if len(images) == 0:
            raise ValueError(f"images is empty (shape {images.shape})")
        bad = ~np.isfinite(images)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"images holds NaN or Inf (first at index {first})")
        bad = (images < -1.0) | (images > 1.0)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"images: float pixels must lie in [-1, 1]; got values in "
                f"[{float(images.min()):.4g}, {float(images.max()):.4g}] (first outside at index "
                f"{first}); scale 0..255 pixels by x / 127.5 - 1, or pass uint8 (N, H, W, 3)"
            )
        return images.astype(np.float32, copy=False)
    raise ValueError(
        f"images: expected uint8 (N, {size}, {size}, 3) or float (N, 3, {size}, {size}) in "
        f"[-1, 1]; got {images.dtype} {images.shape}"
    )
