"""Model similarity from attribution maps (Song et al., "Deep Model Transferability from
Attribution Maps", NeurIPS 2019), and the gradient attribution maps of torch modules.

- `attribution_similarity(maps, other=None)`: for maps (B, n, ...) of B models on the same n
  images, S[a, b] = (1/n) sum_i cos(maps[a, i], maps[b, i]), each map flattened. One batched
  product per chunk of images: each map is normalised once, then every image's (B, B) Gram of
  unit maps comes from one matmul over the chunk; never a loop over model pairs.
- `attributions(model, images, method=...)`: gradient maps of a torch.nn.Module, in batches on
  the model's device, as DeepExplain (Ancona et al., ICLR 2018) defines them: "saliency" |ds/dx|
  (Simonyan et al., 2014, kept per channel: no max over channels) and "gradient_x_input"
  x * ds/dx (Shrikumar et al., 2016). Song et al. use these two and epsilon-LRP, which equals
  gradient x input for ReLU networks as epsilon -> 0 (Ancona et al.).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _arrays as A
from .._memory import budget_for
from .._typing import ArrayIn, ArrayOut
from ..images import load_images

__all__ = ["attribution_similarity", "attributions", "METHODS"]

METHODS = ("saliency", "gradient_x_input")


def _maps(x: Any, name: str, kind: str, device: Any) -> Any:
    """`x` as a finite float (B, n, D) array of `kind` (maps flattened), with each map's largest
    |value| (B, n) for scaling; ValueError naming `name` and the first bad index otherwise."""
    arr = A.as_checked(x, name, kind, device)
    if arr.ndim < 3:
        raise ValueError(
            f"{name} must be attribution maps (B models, n images, ...map shape); got shape "
            f"{tuple(arr.shape)}"
        )
    A.check_nonempty(arr, name)
    flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
    try:
        lo, hi = A.check_values(flat, name)
    except ValueError:
        bad = ~(np.isfinite(arr) if kind == "numpy" else arr.isfinite())
        first = tuple(int(i) for i in np.argwhere(bad if kind == "numpy" else bad.cpu().numpy())[0])
        raise ValueError(
            f"{name} holds NaN or Inf (first at index {first}); remove or impute them first"
        ) from None
    if kind == "numpy":
        absmax = np.maximum(np.abs(lo), np.abs(hi))
        zero = absmax == 0
    else:
        absmax = sys.modules["torch"].maximum(lo.abs(), hi.abs())
        zero = absmax == 0
    if bool(zero.any()):
        b, i = (int(v) for v in np.argwhere(zero if kind == "numpy" else zero.cpu().numpy())[0])
        raise ValueError(
            f"{name}: the map of model {b} for image {i} is all zeros (its norm is 0, so its "
            f"cosine with other maps is undefined); {int(zero.sum())} such maps in all"
        )
    return flat, absmax


def _unit(chunk: Any, absmax: Any, kind: str) -> Any:
    """(B, c, D) maps -> (c, B, D) unit vectors: scaled by their largest |value| first, so that
    the sum of squares neither overflows nor underflows."""
    if kind == "numpy":
        u = np.empty((chunk.shape[1], chunk.shape[0], chunk.shape[2]), dtype=chunk.dtype)
        np.divide(chunk.transpose(1, 0, 2), absmax.T[..., None], out=u)
        u /= np.sqrt(np.einsum("cbd,cbd->cb", u, u))[..., None]
        return u
    u = (chunk.transpose(0, 1) / absmax.T[..., None]).contiguous()
    u /= u.norm(dim=-1, keepdim=True)
    return u


def attribution_similarity(
    maps: ArrayIn, other: ArrayIn | None = None, memory: int | str | None = None
) -> ArrayOut:
    """All-pairs model similarity from attribution maps (Song et al., NeurIPS 2019).

    maps: (B, n, ...) the attribution maps of B models on the same n images (any map shape,
    e.g. (3, H, W); each map is flattened), numpy or torch (CPU or CUDA). other: (Bb, n, ...)
    maps of other models on the same images and of the same shape, or None for all pairs of
    `maps`. Returns S (B, Bb), or (B, B) symmetric with exact ones on the diagonal:

        S[a, b] = (1/n) sum_i <m_ai, m_bi> / (|m_ai| |m_bi|)

    Computed in the inputs' precision (float64 if either is float64, else float32; integers
    become float64), each image's cosines summed into a float64 accumulator; returned float64 or
    float32 accordingly, as the kind of `maps` (on its device). Each map is scaled by its largest
    |value| before its norm, so any finite scale works. Images are processed in chunks whose
    unit maps and Grams fit `memory` (this call's budget, default fastrsa.get_memory_budget());
    a chunk holds at least one image (all models' maps of it).

    Refused (ValueError naming the argument and the first bad index): NaN or Inf, and an
    all-zero map (its cosine is undefined), naming the model and the image; fewer than 3 dims,
    an empty array, and `other` with a different number of images or map shape.
    """
    origin = A.origin_of(maps)
    kind = "torch" if A.is_torch(maps) else "numpy"
    device = A.origin_of(maps).device
    x, xmax = _maps(maps, "maps", kind, device)
    y: Any = None
    ymax: Any = None
    if other is not None:
        y, ymax = _maps(other, "other", kind, device)
    if y is not None and tuple(y.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(
            "other must hold maps of the same images and shape as maps: got maps "
            f"{tuple(A.as_checked(maps, 'maps', kind, device).shape)}, other "
            f"{tuple(A.as_checked(other, 'other', kind, device).shape)}"
        )
    wide = A.is_float64(x) or (y is not None and A.is_float64(y))
    x = A.cast_result(x, wide)
    y = None if y is None else A.cast_result(y, wide)
    b_a, n, d = x.shape
    b_b = b_a if y is None else y.shape[0]
    item = 8 if wide else 4
    # per image: the unit maps of both sets (and a temporary of each), and one (B, Bb) Gram
    per_image = item * (2 * (b_a + (0 if y is None else b_b)) * d + b_a * b_b)
    chunk = max(1, budget_for(memory, device) // max(per_image, 1))
    if kind == "numpy":
        total = np.zeros((b_a, b_b), dtype=np.float64)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            u = _unit(x[:, start:stop], xmax[:, start:stop], kind)
            v = u if y is None else _unit(y[:, start:stop], ymax[:, start:stop], kind)
            total += np.matmul(u, v.transpose(0, 2, 1)).sum(axis=0, dtype=np.float64)
    else:
        torch = sys.modules["torch"]
        total = torch.zeros((b_a, b_b), dtype=torch.float64, device=x.device)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            u = _unit(x[:, start:stop], xmax[:, start:stop], kind)
            v = u if y is None else _unit(y[:, start:stop], ymax[:, start:stop], kind)
            total += torch.bmm(u, v.transpose(1, 2)).sum(dim=0, dtype=torch.float64)
    out = A.cast_result(total / n, wide)
    if y is None:
        out = A.symmetrise_unit_diagonal(out)
    return A.back_to(out, origin)


def _default_output(out: Any) -> Any:
    """One score per image: the sum of the model's output over all but the batch axis."""
    torch = sys.modules["torch"]
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the model returned a {type(out).__name__}, not a tensor: pass output=, a callable "
            "mapping the model's output to one score per image"
        )
    return out.reshape(out.shape[0], -1).sum(dim=1)


def _output_name(output: Any) -> str:
    """How the error messages name the scores: output= by its name, or the default."""
    if output is None:
        return "the default output: the sum of the model's output per image"
    return f"output={getattr(output, '__name__', type(output).__name__)}"


def _model_place(model: Any, device: Any) -> tuple[Any, Any]:
    """(device, dtype) the model computes on: those of its first floating parameter or buffer;
    a model without any computes where `device` says (CPU by default) in float32."""
    torch = sys.modules["torch"]
    tensors = [*model.parameters(), *model.buffers()]
    floating = [t for t in tensors if t.is_floating_point()]
    own = floating[0].device if floating else (tensors[0].device if tensors else None)
    dtype = floating[0].dtype if floating else torch.float32
    if device is None:
        return own if own is not None else torch.device("cpu"), dtype
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if own is not None and own != device:
        raise ValueError(
            f"device is {device} but the model's parameters lie on {own}: move the model "
            "(model.to(device)) or leave device=None to use the model's device"
        )
    return device, dtype


def attributions(
    model: Any,
    images: Any,
    method: str = "saliency",
    output: Callable[[Any], Any] | None = None,
    batch_size: int = 32,
    device: Any = None,
    size: int = 256,
    output_type: str | None = None,
) -> ArrayOut:
    """Gradient attribution maps of a torch.nn.Module, one per image, same shape as the images.

    images: (N, C, H, W) (any (N, ...) the model takes) numpy array or torch tensor, or a folder
    / list of image paths read by fastrsa.images.load_images as (N, 3, size, size) in [-1, 1].
    output: maps the model's output for a batch to one score per image, s (batch,); default the
    sum of the output over all but the batch axis. method, with g = ds/dx (autograd):
      "saliency":          |g|      (Simonyan et al. 2014, per channel: no max over channels)
      "gradient_x_input":  x * g    (Shrikumar et al. 2016)
    The gradient of a batch's summed scores is taken in one backward pass; it equals each image's
    own ds_i/dx_i because the model runs in eval mode (BatchNorm on its running statistics), so
    images do not interact. Each module's training flag is restored afterwards; parameter
    gradients (.grad) are left untouched.

    Runs in batches of `batch_size` on the model's device (that of its parameters; `device` names
    it for a model without parameters, and must match it otherwise), in the model's dtype.
    Returns (N, ...) maps in that dtype (float32 for usual models): a numpy array, or (torch
    input, or output_type="torch") a tensor on the model's device; output_type="numpy" forces
    numpy. Refused: an unknown method, NaN/Inf images, a score that is not one number per image
    or does not depend on the images (detached, or computed without them: a model that ignores
    its input, whose maps would all be zero), naming the model's class and output=. A score that
    depends on the images with a gradient of zero (e.g. out - out) gives zero maps.
    """
    import torch

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if output_type not in (None, "numpy", "torch"):
        raise ValueError(f"output_type must be None, 'numpy' or 'torch'; got {output_type!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int >= 1; got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if output is not None and not callable(output):
        raise TypeError(f"output must be a callable; got {type(output).__name__}")
    score = _default_output if output is None else output
    as_torch = output_type == "torch" or (output_type is None and A.is_torch(images))
    if isinstance(images, (str, os.PathLike)) or (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(p, (str, os.PathLike)) for p in images)
    ):
        images = load_images(images, size=size)
    x_all = A.as_checked(images, "images", "torch")
    if x_all.ndim < 2:
        raise ValueError(f"images must be (N, ...) with N images; got {tuple(x_all.shape)}")
    A.check_nonempty(x_all, "images")
    A.check_values(x_all.reshape(x_all.shape[0], -1), "images")
    place, dtype = _model_place(model, device)
    n = x_all.shape[0]
    wide = dtype == torch.float64
    on_device: Any = torch.empty(x_all.shape, dtype=dtype, device=place) if as_torch else None
    on_host: Any = None if as_torch else np.empty(x_all.shape, np.float64 if wide else np.float32)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.enable_grad():
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                x = x_all[start:stop].to(device=place, dtype=dtype).requires_grad_(True)
                s = score(model(x))
                if not isinstance(s, torch.Tensor) or s.numel() != stop - start:
                    got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                    raise ValueError(
                        f"output must map the model's output to one score per image "
                        f"({stop - start} for this batch); got {got}"
                    )
                if not s.requires_grad:
                    raise ValueError(
                        "the scores do not depend on the images (no gradient flows from them): "
                        "check output= and that the model does not detach its input"
                    )
                (g,) = torch.autograd.grad(s.sum(), x, allow_unused=True)
                if g is None:  # the scores come from parameters only: all-zero maps
                    raise ValueError(
                        f"the scores of model {type(model).__name__} ({_output_name(output)}) "
                        "do not depend on the images: no gradient path leads from the images "
                        "to them (a model that ignores its input?), so every map would be zero"
                    )
                m = g.abs() if method == "saliency" else x.detach() * g
                if on_device is not None:
                    on_device[start:stop] = m
                else:
                    on_host[start:stop] = m.detach().cpu().numpy()
    finally:
        for module, training in modes.items():
            module.training = training  # each module's own flag, as it was
    return on_device if on_device is not None else on_host
