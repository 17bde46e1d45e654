"""A layer's output as one feature vector per input: (b, ...) -> (b, d).

    how = resolve_pool("auto", out.ndim, "text")          # "masked-mean" for (b, t, d)
    feats = pool(out, how, mask=batch["attention_mask"])  # (b, d)

flatten: every value (thingsvision's and Brain-Score's default, the "auto" choice for images);
gap: the mean over (h, w) of a (b, c, h, w) conv map; cls: the first token of (b, t, d); mean:
the mean over tokens after the first `prefix_tokens` (a ViT's CLS and register tokens); last: the
last token that is not padding (per row, left or right padding); masked-mean: the mean over the
tokens the attention mask keeps (the "auto" choice for text sequences). Pure torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["MODALITIES", "POOLINGS", "pool", "resolve_pool"]

POOLINGS = ("auto", "flatten", "gap", "cls", "mean", "last", "masked-mean")
MODALITIES = ("image", "text")
_TOKENS = ("cls", "mean", "last", "masked-mean")  # need (b, t, d) token sequences


def _check_how(how: str, name: str = "pool") -> str:
    if not isinstance(how, str) or how not in POOLINGS:
        listed = ", ".join(map(repr, POOLINGS))
        raise ValueError(f"{name} must be one of {listed}; got {how!r}")
    return how


def _check_rank(how: str, ndim: int, layer: str) -> None:
    """ValueError naming the layer when a pooling does not fit its output's rank."""
    if ndim < 1:
        raise ValueError(f"layer {layer!r}: output is {ndim}-d; expected a batch (b, ...)")
    if how == "gap" and ndim != 4:
        raise ValueError(
            f"layer {layer!r}: pool 'gap' needs a 4-d conv map (b, c, h, w); its output is "
            f"{ndim}-d (use flatten{', cls, mean or last' if ndim == 3 else ''})"
        )
    if how in _TOKENS and ndim != 3:
        raise ValueError(
            f"layer {layer!r}: pool {how!r} needs a 3-d token sequence (b, tokens, d); its "
            f"output is {ndim}-d (use flatten{' or gap' if ndim == 4 else ''})"
        )


def resolve_pool(how: str, ndim: int, modality: str, layer: str = "layer") -> str:
    """The pooling for a layer whose output has `ndim` dimensions (batch first): "auto" is
    "masked-mean" for text token sequences (b, t, d), "flatten" for anything else; a choice that
    does not fit the output's rank or the modality is a ValueError naming the layer."""
    _check_how(how)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'image' or 'text'; got {modality!r}")
    if how == "auto":
        return "masked-mean" if modality == "text" and ndim == 3 else "flatten"
    _check_rank(how, ndim, layer)
    if how == "masked-mean" and modality != "text":
        raise ValueError(
            f"layer {layer!r}: pool 'masked-mean' needs text (an attention mask); for image "
            "tokens use mean, cls or last"
        )
    if how == "flatten" and modality == "text" and ndim == 3:
        raise ValueError(
            f"layer {layer!r}: pool 'flatten' cannot take a text token sequence (b, tokens, d): "
            "token counts differ between batches; use masked-mean, last or cls"
        )
    if how == "mean" and modality == "text":
        raise ValueError(
            f"layer {layer!r}: pool 'mean' would average a text's padding tokens too (its "
            "features would depend on the batch); use masked-mean"
        )
    return how


def _check_mask(mask: torch.Tensor, t: torch.Tensor, how: str, layer: str) -> torch.Tensor:
    """The (b, tokens) 0/1 mask on t's device, each row keeping a token; ValueError otherwise."""
    import torch

    if tuple(mask.shape) != tuple(t.shape[:2]):
        raise ValueError(
            f"layer {layer!r}: pool {how!r}: mask has shape {tuple(mask.shape)}; expected "
            f"(batch, tokens) = {tuple(t.shape[:2])}"
        )
    mask = mask.to(t.device)
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"layer {layer!r}: pool {how!r}: mask must hold only 0 and 1")
    empty = ~(mask != 0).any(dim=1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise ValueError(f"layer {layer!r}: pool {how!r}: mask row {row} keeps no token")
    return mask


def pool(
    t: torch.Tensor,
    how: str,
    *,
    mask: torch.Tensor | None = None,
    prefix_tokens: int = 0,
    layer: str = "layer",
    channels_last: bool = False,
) -> torch.Tensor:
    """A layer's output t (b, ...) pooled to (b, d) in t's dtype; `how` is resolved (not
    "auto"). mask: (b, tokens) of 0/1 for "last" (optional) and "masked-mean" (required).
    prefix_tokens: tokens skipped by "mean" and "masked-mean" (a ViT's CLS and registers).
    channels_last: a conv map is (b, h, w, c) (Swin stages), so "gap" averages h and w."""
    import torch

    _check_how(how)
    if how == "auto":
        raise ValueError(f"layer {layer!r}: pool 'auto' must be resolved first (resolve_pool)")
    _check_rank(how, t.ndim, layer)
    if how in ("gap", "mean", "masked-mean") and not t.is_floating_point():
        raise ValueError(f"layer {layer!r}: pool {how!r} needs floating point; output is {t.dtype}")
    b = t.shape[0]
    if how == "flatten":
        return t.reshape(b, -1)
    if how == "gap":
        return t.mean(dim=(1, 2) if channels_last else (2, 3))
    if how == "cls":
        return t[:, 0]
    skip = int(prefix_tokens)
    if how in ("mean", "masked-mean") and not 0 <= skip < t.shape[1]:
        raise ValueError(
            f"layer {layer!r}: prefix_tokens must be in [0, {t.shape[1]}) for its "
            f"{t.shape[1]} tokens; got {prefix_tokens}"
        )
    if how == "mean":
        return t[:, skip:].mean(dim=1)
    if how == "last":
        if mask is None:
            return t[:, -1]
        kept = _check_mask(mask, t, how, layer) != 0
        n = kept.shape[1]
        # the last kept token: the first one from the right
        last = (n - 1) - kept.flip(1).to(torch.int8).argmax(dim=1)
        return t[torch.arange(b, device=t.device), last]
    # masked-mean
    if mask is None:
        raise ValueError(f"layer {layer!r}: pool 'masked-mean' needs the attention mask")
    mask = _check_mask(mask, t, how, layer)[:, skip:]
    if skip and bool((~(mask != 0).any(dim=1)).any()):
        raise ValueError(
            f"layer {layer!r}: pool 'masked-mean': a mask row keeps no token after "
            f"prefix_tokens={skip}"
        )
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    w = (mask != 0).to(acc)[:, :, None]
    total = (t[:, skip:].to(acc) * w).sum(dim=1)
    return (total / w.sum(dim=1)).to(t.dtype)
