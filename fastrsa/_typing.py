"""Types of the public API: arrays are numpy arrays or torch tensors (CPU or CUDA), and a call
returns the kind it was given. torch is imported for the type checker only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

# What the API accepts: anything numpy can read as an array, or a torch tensor.
ArrayIn = Union[npt.ArrayLike, "torch.Tensor"]
# What it returns: a float numpy array, or a tensor on the input's device.
ArrayOut = Union[npt.NDArray[np.floating], "torch.Tensor"]
