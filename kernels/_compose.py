"""Compositions of the ops shared by every backend: Spearman = Pearson of average-tie ranks."""


def compare_from_ops(rank, corr, kendall):
    """`compare(a, b, method)` from a backend's ops: rank (R, M) -> (R, M) ranks, corr(a, b,
    centre) -> (Ba, Bb) Pearson r (cosine without centring), kendall(a, b) -> (Ba, Bb) tau-b.
    Ranks are cast to a's dtype before the correlation."""

    def compare(a, b, method: str):
        if method == "kendall":
            return kendall(a, b)
        if method == "spearman":
            a = _like(rank(a), a)
            b = None if b is None else _like(rank(b), b)
        return corr(a, b, centre=method != "cosine")

    return compare


def _like(x, ref):
    """x in ref's dtype (numpy arrays and tensors)."""
    return x.to(ref.dtype) if hasattr(x, "is_cuda") else x.astype(ref.dtype, copy=False)
