"""The images of a torch Dataset or DataLoader, an item at a time: which dataset, each item's
image (a PIL image or a (C, H, W) array), its bytes for the content hash.

torch and PIL are imported only when a dataset is given (torch is then already imported).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["dataset_of", "hash_item", "item_image", "item_kind"]

# the keys of a dict item that hold its image, in the order they are tried
_IMAGE_KEYS = ("image", "pixel_values", "img")


def dataset_of(obj: Any) -> Any:
    """The map-style torch Dataset that `obj` is or that a DataLoader `obj` reads; None when
    `obj` is neither. ValueError for a loader that does not read its dataset in index order
    (shuffle=True, another sampler) and for a dataset without __len__ (an IterableDataset)."""
    if "torch" not in sys.modules:  # nothing made without torch is a torch dataset
        return None
    from torch.utils.data import (
        BatchSampler,
        DataLoader,
        Dataset,
        IterableDataset,
        RandomSampler,
        SequentialSampler,
    )

    if isinstance(obj, DataLoader):
        if isinstance(obj.dataset, IterableDataset):
            raise ValueError(
                "images: the DataLoader reads an IterableDataset; fastrsa needs a map-style "
                "Dataset with __len__ (it reads dataset[i] in index order)"
            )
        sampler = obj.sampler
        if obj.batch_sampler is not None:
            if not isinstance(obj.batch_sampler, BatchSampler):
                raise ValueError(
                    f"images: the DataLoader's batch_sampler "
                    f"{type(obj.batch_sampler).__name__} may not read the dataset in index "
                    "order; pass the Dataset (fastrsa batches it in index order)"
                )
            sampler = obj.batch_sampler.sampler
        if isinstance(sampler, RandomSampler):
            raise ValueError(
                "images: the DataLoader shuffles (shuffle=True): its order is not the "
                "images' order; pass shuffle=False or the Dataset itself"
            )
        if not isinstance(sampler, SequentialSampler):
            raise ValueError(
                f"images: the DataLoader's sampler {type(sampler).__name__} may not read the "
                "dataset in index order; pass the Dataset (fastrsa batches it in index order)"
            )
        obj = obj.dataset
    if isinstance(obj, IterableDataset) or (isinstance(obj, Dataset) and not _has_len(obj)):
        raise ValueError(
            f"images: {type(obj).__name__} has no __len__ (an IterableDataset?); fastrsa needs "
            "a map-style Dataset (it reads dataset[i] for i in range(len(dataset)))"
        )
    return obj if isinstance(obj, Dataset) else None


def _has_len(obj: Any) -> bool:
    try:
        len(obj)
    except TypeError:
        return False
    return True


def item_image(item: Any, index: int) -> Any:
    """The image of dataset[index]: a PIL image, or a (C, H, W) numpy array (a tensor is
    detached, moved to the CPU; bfloat16 becomes float32). The item is that image, or a
    tuple / list whose first element is, or a dict with an "image", "pixel_values" or "img"
    key. TypeError naming the index for anything else."""
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    elif isinstance(item, dict):
        key = next((k for k in _IMAGE_KEYS if k in item), None)
        if key is None:
            raise TypeError(
                f"images: dataset[{index}] is a dict without an image key {list(_IMAGE_KEYS)} "
                f"(keys: {sorted(map(str, item))[:5]})"
            )
        item = item[key]
    if "PIL" in sys.modules:
        from PIL import Image

        if isinstance(item, Image.Image):
            return item
    if "torch" in sys.modules:
        import torch

        if isinstance(item, torch.Tensor):
            item = item.detach().cpu()
            item = (item.float() if item.dtype == torch.bfloat16 else item).numpy()
    if (
        isinstance(item, np.ndarray)
        and item.ndim == 3
        and (item.dtype.kind == "f" or (item.dtype == np.uint8 and item.shape[0] in (1, 3)))
    ):
        return item
    what = f"{item.dtype} {item.shape}" if isinstance(item, np.ndarray) else type(item).__name__
    raise TypeError(
        f"images: dataset[{index}] holds {what}; expected a PIL image, a float (C, H, W) "
        "tensor or array, or a uint8 (3, H, W) one (alone, first in a tuple, or under "
        '"image" / "pixel_values" in a dict)'
    )


def item_kind(image: Any) -> str:
    """ "pixels" for a float (C, H, W) array (fed to a model as given), "image" for a PIL image
    or a uint8 (C, H, W) array (prepared by the model's own pipeline)."""
    return "pixels" if isinstance(image, np.ndarray) and image.dtype.kind == "f" else "image"


def hash_item(h: Any, image: Any) -> None:
    """Adds one item's image to the hash `h`: a PIL image as "pil MODE W H\\n" and its bytes
    (then its palette's, for a palette image), an array as "array DTYPE SHAPE\\n" and its
    C-order bytes."""
    if isinstance(image, np.ndarray):
        arr = np.ascontiguousarray(image)
        h.update(f"array {arr.dtype.str} {arr.shape}\n".encode())
        h.update(arr.data.cast("B"))
        return
    h.update(f"pil {image.mode} {image.size[0]} {image.size[1]}\n".encode())
    h.update(image.tobytes())
    if image.mode in ("P", "PA"):
        h.update(bytes(image.getpalette() or []))
