"""One forward pass that catches the outputs of the requested layers.

    outs = capture(module, lambda hidden: module(x), ["layer1", "blocks.3"])
    outs["blocks.3"]                           # the tensor the layer gave (hidden state first)

Layers are submodule names (`module.named_modules()`), caught with forward hooks, or
`hidden_states.N` (a Hugging Face model's `output_hidden_states`, read from the output). torch
is imported by the caller: this module never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layer_names import first_tensor

__all__ = ["HIDDEN_STATES", "capture", "hidden_state_index"]

HIDDEN_STATES = "hidden_states."  # the prefix of layers read from output.hidden_states


def hidden_state_index(layer: str) -> int | None:
    """N for a layer named "hidden_states.N", else None."""
    if not layer.startswith(HIDDEN_STATES):
        return None
    tail = layer[len(HIDDEN_STATES) :]
    return int(tail) if tail.isdigit() else None


def capture(
    module: Any, run: Callable[[bool], Any], layers: list[str], who: str = "model"
) -> dict[str, Any]:
    """{layer: output tensor} of one forward pass `run(hidden_states)` (hidden_states: whether
    `hidden_states.N` layers were asked for, so the model must return them).

    A submodule's output is the first tensor of what it returns (a tuple or a ModelOutput: the
    hidden state first), detached and cloned (later in-place ops cannot change it). ValueError,
    naming `who` and the layer: a name that is no submodule, a layer that did not run or ran
    more than once in the pass, an output holding no tensor, a hidden state index out of range.
    Holds the requested layers' outputs of one pass."""
    named = dict(module.named_modules())
    hidden = {layer: hidden_state_index(layer) for layer in layers}
    hooked = [layer for layer in layers if hidden[layer] is None]
    for layer in hooked:
        if layer not in named or not layer:
            raise ValueError(f"{who}: {layer!r} is not a layer of the model")
    caught: dict[str, Any] = {}

    def hook_for(layer: str):
        def hook(_mod, _inputs, output):
            if layer in caught:
                raise ValueError(
                    f"{who}: layer {layer!r} ran more than once in one forward pass; choose a "
                    "submodule that runs once"
                )
            tensor = first_tensor(output)
            if tensor is None:
                raise ValueError(
                    f"{who}: layer {layer!r} returns a {type(output).__name__} holding no tensor"
                )
            caught[layer] = tensor.detach().clone()

        return hook

    handles = [named[layer].register_forward_hook(hook_for(layer)) for layer in hooked]
    try:
        output = run(any(i is not None for i in hidden.values()))
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for layer in layers:
        index = hidden[layer]
        if index is None:
            if layer not in caught:
                raise ValueError(f"{who}: layer {layer!r} did not run in the forward pass")
            out[layer] = caught[layer]
            continue
        states = getattr(output, "hidden_states", None)
        if states is None:
            raise ValueError(f"{who}: {layer!r}: the model returns no hidden_states")
        if index >= len(states):
            raise ValueError(
                f"{who}: {layer!r}: the model returns hidden_states.0 .. "
                f"hidden_states.{len(states) - 1}"
            )
        out[layer] = states[index].detach()
    return out
