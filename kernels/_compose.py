"""Compositions of the ops shared by every backend: Spearman = Pearson of average-tie ranks,
rho-a = an affine function of the product of ranks, tau-a = Knight's count of the tau-b kernel
divided by M(M-1)/2."""


def compare_from_ops(rank, corr, kendall):
    """`compare(a, b, method)` from a backend's ops: rank (R, M) -> (R, M) float64 ranks,
    corr(a, b, centre) -> (Ba, Bb) Pearson r (cosine without centring), kendall(a, b, variant)
    -> (Ba, Bb) tau-b (variant "b") or tau-a (variant "a"). Ranks are cast to a's dtype before
    the correlation (spearman); rho-a keeps them in float64."""

    def compare(a, b, method: str):
        if method in ("kendall", "tau-a"):
            return kendall(a, b, "b" if method == "kendall" else "a")
        if method == "rho-a":
            return rho_a_of_ranks(rank(a), None if b is None else rank(b))
        if method == "spearman":
            a = _like(rank(a), a)
            b = None if b is None else _like(rank(b), b)
        return corr(a, b, centre=method != "cosine")

    return compare


def rho_a_of_ranks(ra, rb=None):
    """rsatoolbox's rho-a from float64 average-tie ranks ra: (Ba, M), rb: (Bb, M) or None (= ra)
    -> (Ba, Bb) float64, numpy arrays or tensors:

        rho_a = 12 x.y / (M^3 - M) - 3 (M + 1) / (M - 1) = 12 xc.yc / (M^3 - M),

    xc = x - (M + 1) / 2 (the ranks' mean), so no tie correction: a tied row's rho-a with itself
    is below 1, and 0 against a constant row. Centred ranks are half-integers and their
    products (quarter-integers) are summed exactly in float64 while M^3 / 12 < 2^51 (M up to
    about 3e5 values): the result is one rounding from the exact ratio (the diagonal of untied
    rows is exactly 1)."""
    m = ra.shape[-1]
    ca = ra - (m + 1) / 2
    cb = ca if rb is None else rb - (m + 1) / 2
    return (ca @ cb.T) * 12.0 / float(m**3 - m)


def _like(x, ref):
    """x in ref's dtype (numpy arrays and tensors)."""
    return x.to(ref.dtype) if hasattr(x, "is_cuda") else x.astype(ref.dtype, copy=False)
