"""Inputs as a model's own pipeline prepares them: images (`ImagePrep`: resize, center crop,
scale, mean/std, the arithmetic of torchvision's PIL path, which timm uses too) and text
(`TextPrep`: a tokenizer's padded batch).

    prep = ImagePrep(size=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = prep.batch([read_rgb(p) for p in paths])     # (b, 3, 224, 224) float32

PIL is imported when an image is prepared, torch and the tokenizer's library when text is.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..images import load_image

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage

__all__ = ["INTERPOLATIONS", "ImagePrep", "TextPrep", "open_rgb", "read_rgb"]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_TEXT_TOKENS = 512  # the longest batch a tokenizer without its own limit gets


def open_rgb(image: PILImage.Image, name: str = "image") -> PILImage.Image:
    """`image` as an 8-bit RGB PIL image: modes 1, L, LA, P (with or without transparency), RGB,
    RGBA (alpha dropped, as `Image.convert("RGB")` does), CMYK, YCbCr, ... converted by PIL; 16-bit
    gray (I;16, I;16B, I;16L, and mode "I" read from a PNG) scaled to 8 bits as round(p / 257).
    ValueError naming `name` for 32-bit integer or float pixels (unknown range), another mode,
    or an empty image; TypeError for something that is not a PIL image."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(f"{name} must be a PIL image; got {type(image).__name__}")
    if image.width * image.height == 0:
        raise ValueError(f"{name} is empty ({image.width} x {image.height} pixels)")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT or (mode == "I" and image.format == "PNG"):
        gray = np.asarray(image).astype(np.float64)  # 0..65535
        eight = np.clip(np.rint(gray / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "float"
        raise ValueError(
            f"{name} holds {kind} pixels of unknown range (mode {mode!r}); save it as an 8- or "
            "16-bit image"
        )
    try:
        if mode == "P" and "transparency" in image.info:
            # the palette's colours, as convert("RGB") gives them, without PIL's warning
            return image.convert("RGBA").convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise ValueError(
            f"{name} has mode {mode!r}, which PIL cannot convert to RGB ({err})"
        ) from None


def read_rgb(path: str | os.PathLike) -> PILImage.Image:
    """One image file as an 8-bit RGB PIL image (`open_rgb`), decoded and its file closed.
    FileNotFoundError when it is missing; ValueError naming the file when it is not a readable
    image, declares more pixels than PIL's Image.MAX_IMAGE_PIXELS, or holds 32-bit or float
    pixels (as `fastrsa.images.read_image`)."""
    return open_rgb(load_image(path), name=f"images: {os.fspath(path)}")


def _pair(value: Any, name: str, allow_none: bool = True) -> int | tuple[int, int] | None:
    """An int > 0, an (h, w) pair of them, or None; ValueError/TypeError naming `name`."""
    if value is None and allow_none:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
        if min(value) <= 0:
            raise ValueError(f"{name} must be positive; got {tuple(value)}")
        return int(value[0]), int(value[1])
    if _is_int(value):
        if value <= 0:
            raise ValueError(f"{name} must be positive; got {value}")
        return int(value)
    raise TypeError(f"{name} must be an int, an (h, w) pair of ints or None; got {value!r}")


def _is_int(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    """Three finite numbers as floats; ValueError naming `name` otherwise."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 numbers (one per RGB channel); got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be 3 finite numbers (one per RGB channel); got {value!r}")
    return out[0], out[1], out[2]


def _center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) pixels center-cropped to (height, width), padded with zeros where smaller,
    exactly as torchvision's CenterCrop: top = int(round((h - height) / 2.0))."""
    h, w = pixels.shape[:2]
    if height > h or width > w:
        top, left = max(height - h, 0) // 2, max(width - w, 0) // 2
        bottom, right = (max(height - h, 0) + 1) // 2, (max(width - w, 0) + 1) // 2
        pixels = np.pad(pixels, ((top, bottom), (left, right), (0, 0)))
        h, w = pixels.shape[:2]
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return pixels[top : top + height, left : left + width]


@dataclass(frozen=True)
class ImagePrep:
    """How a model's images are prepared, as float32 (3, H, W) pixels.

    size: resize first: an int resizes the shorter side to it (aspect kept, the other side
    int(size * long / short), as torchvision's Resize), (h, w) resizes to exactly that, None
    keeps the size. crop: then center-crop to it (int: square; (h, w)), padding with zeros
    where the image is smaller (torchvision's CenterCrop); None: no crop. Pixels p (0..255)
    become (p * scale - mean) / std per channel. interpolation: PIL's filter for the resize.
    """

    size: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: str = "bilinear"
    scale: float = 1 / 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair(self.size, "size"))
        object.__setattr__(self, "crop", _pair(self.crop, "crop"))
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        std = _triple(self.std, "std")
        if 0.0 in std:
            raise ValueError(f"std must be nonzero; got {std}")
        object.__setattr__(self, "std", std)
        if self.interpolation not in INTERPOLATIONS:
            listed = ", ".join(map(repr, INTERPOLATIONS))
            raise ValueError(f"interpolation must be one of {listed}; got {self.interpolation!r}")
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)):
            raise TypeError(f"scale must be a number > 0; got {scale!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0; got {scale!r}")
        object.__setattr__(self, "scale", float(scale))

    def __call__(self, image: PILImage.Image, name: str = "image") -> np.ndarray:
        """One PIL image (any mode `open_rgb` takes) as (3, H, W) float32."""
        from PIL import Image

        rgb = open_rgb(image, name)
        if self.size is not None:
            w, h = rgb.size
            if isinstance(self.size, int):
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = self.size, int(self.size * long / short)
                new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            else:
                new_h, new_w = self.size
            if (new_w, new_h) != (w, h):
                filt = getattr(Image.Resampling, self.interpolation.upper())
                rgb = rgb.resize((new_w, new_h), filt)
        pixels = np.asarray(rgb)  # (h, w, 3) uint8
        if self.crop is not None:
            ch, cw = (self.crop, self.crop) if isinstance(self.crop, int) else self.crop
            pixels = _center_crop(pixels, ch, cw)
        x = pixels.transpose(2, 0, 1).astype(np.float32)
        # x / (1 / scale): bit for bit torchvision's to_tensor (p / 255) at the default scale
        x /= np.float32(1.0 / self.scale)
        x -= np.asarray(self.mean, dtype=np.float32)[:, None, None]
        x /= np.asarray(self.std, dtype=np.float32)[:, None, None]
        return x

    def batch(self, images: list[PILImage.Image], first: int = 0) -> np.ndarray:
        """Images as (b, 3, H, W) float32. ValueError when they come out in different sizes
        (images are named by index from `first`)."""
        if len(images) == 0:
            raise ValueError("images is an empty list")
        out = [self(img, name=f"image {first + i}") for i, img in enumerate(images)]
        shapes = {x.shape for x in out}
        if len(shapes) > 1:
            odd = next(i for i, x in enumerate(out) if x.shape != out[0].shape)
            raise ValueError(
                f"image {first + odd} comes out {out[odd].shape[1:]} pixels but image {first} "
                f"{out[0].shape[1:]}: images of other aspects need a crop or an (h, w) size"
            )
        return np.stack(out)

    def describe(self) -> dict[str, Any]:
        """Every field as JSON-able values, with "kind": "image"."""
        out: dict[str, Any] = {"kind": "image"}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **overrides: Any) -> ImagePrep:
        """A copy with the fields given changed (None values ignored)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"ImagePrep has no field {unknown[0]!r}; fields: {sorted(names)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def taskonomy(cls, size: int = 256) -> ImagePrep:
        """The Taskonomy encoders' convention: resized (bilinear) to size x size, p / 127.5 - 1
        (`fastrsa.images.read_image` for 8-bit images)."""
        return cls(size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    @classmethod
    def from_timm(cls, cfg: dict[str, Any]) -> ImagePrep:
        """timm's evaluation transform for a resolved data config (`resolve_data_config`:
        input_size, interpolation, mean, std, crop_pct, crop_mode "center" or "squash")."""
        if not isinstance(cfg, dict) or "input_size" not in cfg:
            raise ValueError(f"timm data config must be a dict with 'input_size'; got {cfg!r}")
        h, w = (int(v) for v in tuple(cfg["input_size"])[-2:])
        crop_pct = cfg.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
        mode = cfg.get("crop_mode") or "center"
        if cfg.get("crop_border_pixels"):
            raise ValueError(
                "timm data config: crop_border_pixels is not supported; give size/crop"
            )
        scaled = (math.floor(h / crop_pct), math.floor(w / crop_pct))
        size: int | tuple[int, int]
        if mode == "squash":
            size = scaled
        elif mode == "center" and scaled[0] == scaled[1]:
            size = scaled[0]
        elif mode == "center":
            raise ValueError(
                f"timm data config: crop_mode 'center' with a non-square input_size {(h, w)} is "
                "not supported; give size and crop"
            )
        else:
            raise ValueError(
                f"timm data config: crop_mode {mode!r} is not supported ('center', 'squash'); "
                "give size and crop"
            )
        interpolation = cfg.get("interpolation") or "bilinear"
        return cls(
            size=size,
            crop=(h, w) if h != w else h,
            mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
            std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
            interpolation=interpolation,
        )

    @classmethod
    def from_torchvision(cls, transform: Any) -> ImagePrep:
        """A torchvision weights' transform (`weights.transforms()`, an ImageClassification
        preset: resize_size, crop_size, mean, std, interpolation)."""
        attrs = ("resize_size", "crop_size", "mean", "std", "interpolation")
        missing = [a for a in attrs if not hasattr(transform, a)]
        if missing:
            raise TypeError(
                "transform must be a torchvision ImageClassification preset (weights.transforms()"
                f"); {type(transform).__name__} has no {missing[0]!r}"
            )

        def one(value: Any) -> Any:
            value = list(value) if isinstance(value, (list, tuple)) else value
            return value[0] if isinstance(value, list) and len(value) == 1 else value

        interpolation = getattr(transform.interpolation, "value", transform.interpolation)
        if interpolation == "nearest-exact":  # torchvision maps it to PIL's NEAREST
            interpolation = "nearest"
        return cls(
            size=one(transform.resize_size),
            crop=one(transform.crop_size),
            mean=tuple(transform.mean),
            std=tuple(transform.std),
            interpolation=interpolation,
        )


class TextPrep:
    """A tokenizer's padded batch: tokenizer(texts, padding=True, truncation=True,
    max_length=max_tokens, return_tensors="pt"), the mask included, padded on the right
    whatever the tokenizer's padding_side (left padding would shift a decoder's positions, so
    a text's features would depend on its batch). max_tokens None: the
    tokenizer's model_max_length, at most 512. Picklable (holds the tokenizer)."""

    def __init__(self, tokenizer: Any, max_tokens: int | None = None) -> None:
        if not callable(tokenizer):
            raise TypeError(
                f"tokenizer must be a callable tokenizer; got {type(tokenizer).__name__}"
            )
        if max_tokens is not None:
            if not _is_int(max_tokens):
                raise TypeError(f"max_tokens must be an int > 0 or None; got {max_tokens!r}")
            if max_tokens <= 0:
                raise ValueError(f"max_tokens must be > 0; got {max_tokens}")
        self.tokenizer = tokenizer
        self.max_tokens = None if max_tokens is None else int(max_tokens)

    @property
    def max_length(self) -> int:
        """The tokens a text keeps (longer ones are truncated)."""
        if self.max_tokens is not None:
            return self.max_tokens
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(min(limit, _TEXT_TOKENS)) if isinstance(limit, (int, float)) else _TEXT_TOKENS

    def __call__(self, texts: list[str], first: int = 0) -> dict[str, torch.Tensor]:
        """{"input_ids": (b, t) int64, "attention_mask": (b, t), ...}, padded to the longest.
        ValueError naming text `first + i` when it is empty or not a str."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a list of str; got {type(texts).__name__}")
        if not texts:
            raise ValueError("texts is an empty list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text {first + i} is not a str; got {type(text).__name__}")
            if not text.strip():
                raise ValueError(f"text {first + i} is empty")
        if len(texts) > 1 and getattr(self.tokenizer, "pad_token", "") is None:
            raise ValueError(
                f"tokenizer {type(self.tokenizer).__name__} has no padding token; set "
                "tokenizer.pad_token (e.g. to tokenizer.eos_token) to batch texts"
            )
        side = getattr(self.tokenizer, "padding_side", None)
        if side not in (None, "right"):  # left padding shifts a decoder's positions: batch-
            self.tokenizer.padding_side = "right"  # dependent features; restored below
        try:
            encoded = self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
                return_attention_mask=True,
            )
        finally:
            if side not in (None, "right"):
                self.tokenizer.padding_side = side
        return dict(encoded)

    def describe(self) -> dict[str, Any]:
        """What makes the batches: JSON-able, with "kind": "text"."""
        return {
            "kind": "text",
            "tokenizer": type(self.tokenizer).__name__,
            "name_or_path": str(getattr(self.tokenizer, "name_or_path", "") or ""),
            "max_tokens": self.max_length,
            "padding": "longest",
            "padding_side": "right",
            "truncation": True,
        }

    def __repr__(self) -> str:
        return f"TextPrep({type(self.tokenizer).__name__}, max_tokens={self.max_length})"
