"""Measures at sweep scale: each model's (unit's) small "state" from its two n x n Grams, and a
tile (block of rows x block of columns) of a measure from the states of the two blocks.

A sweep cannot hold 1,000 units' features. After the pass that builds a unit's RDM it reads the
unit's (n, d) features a column chunk at a time into two float64 Grams (`grams`):

    G  = X Xᵀ        (plain; the kNN measures: cosine of the rows as given)
    Gc = Xc Xcᵀ      (centred, Xc = X minus its float64 column means; every other measure)

and keeps one fixed-shape state per unit and kind (`state_kind`, `make_state`):

    "gram"   {"gram": Gc (n, n)}                       cka              n²·8 bytes
    "eig"    {"u": (n, n), "lam": (n,)}                svcca, cca, nbs, procrustes
             Gc = U diag(lam) Uᵀ, lam descending, clipped at 0       (n² + n)·8 bytes
    "knnK"   {"table": (n, K) int64, "sims": (n, K)}   mutual-knn, jaccard-knn, cknna
             knn.neighbours' table from the cosines G_ij / sqrt(G_ii G_jj)   n·K·16 bytes

`tile` then computes a block of the measure from two lists of states with each measure's own
per-pair code (cka.normalised of gram.inner_products-style products; procrustes.pair_score on
procrustes.basis_from_eig; svcca.pair_cca on svcca.reduced_from_eig; knn's mutual_knn,
jaccard_knn, cknna_of_graphs on Neighbours), with fastrsa.similarity's conventions: symmetric
measures all-pairs are mirrored with an exact diagonal (1 for similarities, 0 for procrustes
distances); cknna is computed for every ordered pair (row model's mask first), diagonal 1.
The result equals `fastrsa.similarity(features, measure, **options)` to float rounding (about
1e-12 relative on well-conditioned float64 data; tests/test_from_grams.py checks 1e-8).

How the eig route differs from the SVD of the features: singular values are sqrt(lam) within
the rank of gram.eig_rank (eigenvalues above lam_max · n · 1e-12), where the SVD resolves down
to ~1e-28 · lam_max; the two agree unless a unit has true directions with singular-value ratios
below ~1e-6 (then its alpha < 1 shape metrics and CCA, which weight those directions, differ).

Not from Grams (NOT_AT_SWEEP says why): pwcca, ridge, dds, attribution, and cka's laplacian
kernel and minibatch CKA; a sweep computes all of these but attribution from the features it
keeps instead (fastrsa.sweeps.measure_specs.kind_of). "rsa" is the sweep's own RDM path.

`grams` reads column chunks (arrays, memmaps, zarr arrays); `grams_by_rows` reads blocks of
rows (a file read without mapping it: what the sweep's pass writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from .._checks import check_count
from .cka import hsic_scale, normalised
from .gram import centre, rbf_from_sq, sq_distances_from_gram, unit_scaled
from .knn import (
    Neighbours,
    check_k,
    cknna_of_graphs,
    neighbours_from_gram,
    overlap_matrix,
)
from .procrustes import basis_from_eig, check_alpha, pair_score
from .svcca import check_variance, pair_cca, reduced_from_eig

__all__ = [
    "NOT_AT_SWEEP",
    "SWEEP_MEASURES",
    "grams",
    "grams_by_rows",
    "make_state",
    "needs_plain",
    "state_bytes",
    "state_kind",
    "tile",
]

SWEEP_MEASURES = ("cka", "svcca", "nbs", "procrustes", "cca", "mutual-knn", "jaccard-knn", "cknna")
NOT_AT_SWEEP: dict[str, str] = {
    "pwcca": "its weights need each neuron's (feature column's) values against the canonical "
    "variates, which a unit's Gram does not keep",
    "ridge": "its cross-validated predictions are scored per target unit (feature column), "
    "which a unit's Gram does not keep",
    "dds": "its normalisations (z-scoring, group, instance, layer or batch norm) act on the "
    "features themselves, before any Gram",
    "attribution": "it compares attribution maps, not features",
}
_EIG = ("svcca", "nbs", "procrustes", "cca")
_KNN = ("mutual-knn", "jaccard-knn", "cknna")
_KNN_LABEL = {"mutual-knn": "mutual kNN", "jaccard-knn": "Jaccard kNN", "cknna": "CKNNA"}
# |x| below this: products of features underflow float64's normal range (2**-1022) in the Gram
_TINY = 2.0**-480


def grams(
    x: Any, budget: int, *, centred: bool = True, plain: bool = False, name: str = "features"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(n, d) features -> (G = X Xᵀ if plain else None, Gc = Xc Xcᵀ if centred else None),
    float64 (n, n), Xc the column-centred features (float64 column means, exact per column).

    x: any object with .shape (n, d), .dtype (float, or integer) and x[:, c0:c1] (a numpy
    array, np.memmap, zarr array, ...); read in column chunks of at most budget / (2·8·n)
    columns (at least 1), each converted to float64 and, for Gc, centred into a second copy: so
    memory is the Grams, one product and two chunks. ValueError naming `name` for a bad shape,
    NaN/Inf, or features so large (or so small, |x| < 2**-480) that the Gram overflows
    (underflows) float64: rescale them."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 2 or not shape[0] or not shape[1]:
        raise ValueError(
            f"{name} must be a non-empty 2-D (n images, d features) array; got {shape}"
        )
    kind = np.dtype(getattr(x, "dtype", np.float64)).kind
    if kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers; got dtype {x.dtype}")
    n, d = int(shape[0]), int(shape[1])
    step = max(1, int(budget) // (2 * 8 * n))
    g = np.zeros((n, n)) if plain else None
    gc = np.zeros((n, n)) if centred else None
    top = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for c0 in range(0, d, step):
            chunk = np.asarray(x[:, c0 : min(d, c0 + step)], dtype=np.float64)
            if not np.isfinite(chunk).all():
                bad = np.argwhere(~np.isfinite(chunk))[0]
                raise ValueError(
                    f"{name} holds NaN or Inf (first at index ({bad[0]}, {c0 + bad[1]})); "
                    "remove or impute them first"
                )
            top = max(top, float(np.abs(chunk).max()))
            if g is not None:
                g += chunk @ chunk.T
            if gc is not None:
                xc = chunk - chunk.mean(axis=0)
                gc += xc @ xc.T
    if any(m is not None and not np.isfinite(m).all() for m in (g, gc)) or 0 < top < _TINY:
        raise ValueError(
            f"{name}: its Gram {'overflows' if top >= _TINY else 'underflows'} float64 "
            f"(largest |value| {top:.3g}); rescale the features"
        )
    return g, gc


def grams_by_rows(
    read: Callable[[int, int], Any], n: int, d: int, budget: int, *, centred: bool = True,
    plain: bool = False, name: str = "features",
) -> tuple[np.ndarray | None, np.ndarray | None]:  # fmt: skip
    """`grams` of features read a block of rows at a time: read(r0, r1) -> rows r0..r1-1,
    (r1 - r0, d), any real dtype (e.g. from a file, without mapping it). One pass for the float64
    column means, then each pair of row blocks I <= J gives G[I, J] = X_I X_Jᵀ and Gc[I, J] =
    (X_I - mean)(X_J - mean)ᵀ. Memory: the Grams, two row blocks and their centred copies,
    blocks of at most budget / (4·8·d) rows (at least 1). Same errors as `grams`."""
    step = max(1, min(n, int(budget) // (4 * 8 * max(1, d))))
    blocks = [(r0, min(n, r0 + step)) for r0 in range(0, n, step)]

    def rows(r0: int, r1: int) -> np.ndarray:
        x = np.asarray(read(r0, r1), dtype=np.float64).reshape(r1 - r0, d)
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(
                f"{name} holds NaN or Inf (first at index ({r0 + bad[0]}, {bad[1]})); "
                "remove or impute them first"
            )
        return x

    total, top = np.zeros(d), 0.0
    for r0, r1 in blocks:
        x = rows(r0, r1)
        total += x.sum(axis=0)
        top = max(top, float(np.abs(x).max()))
    mean = total / n
    g = np.empty((n, n)) if plain else None
    gc = np.empty((n, n)) if centred else None
    with np.errstate(over="ignore", invalid="ignore"):
        for i, (a0, a1) in enumerate(blocks):
            a = x if len(blocks) == 1 else rows(a0, a1)  # one block: the first pass's rows
            ac = a - mean
            for b0, b1 in blocks[i:]:
                b = a if b0 == a0 else rows(b0, b1)
                bc = ac if b0 == a0 else b - mean
                if g is not None:
                    g[a0:a1, b0:b1] = a @ b.T
                    g[b0:b1, a0:a1] = g[a0:a1, b0:b1].T
                if gc is not None:
                    gc[a0:a1, b0:b1] = ac @ bc.T
                    gc[b0:b1, a0:a1] = gc[a0:a1, b0:b1].T
    if any(m is not None and not np.isfinite(m).all() for m in (g, gc)) or 0 < top < _TINY:
        raise ValueError(
            f"{name}: its Gram {'overflows' if top >= _TINY else 'underflows'} float64 "
            f"(largest |value| {top:.3g}); rescale the features"
        )
    return g, gc


def state_kind(measure: str, options: dict) -> str:
    """The state `measure` needs: "gram" (cka), "eig" (svcca, cca, nbs, procrustes) or f"knn{k}"
    (mutual-knn, jaccard-knn, cknna). options: already merged with fastrsa.similarity.OPTIONS.
    ValueError for a measure (or a cka kernel, minibatch) not computed at sweep scale, or a bad k
    (TypeError for a non-int k)."""
    if measure == "cka":
        kernel = options.get("kernel", "linear")
        if kernel == "laplacian":
            raise ValueError(
                "cka kernel='laplacian' is not computed at sweep scale: exp(-‖x - y‖₁ / d) needs "
                "the features' L1 distances, which no Gram gives; use kernel='linear' or 'rbf'"
            )
        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be one of ('linear', 'rbf') here; got {kernel!r}")
        if options.get("minibatch") is not None:
            raise ValueError(
                "cka minibatch is not computed at sweep scale: a sweep holds each unit's whole "
                "n x n Gram, so it computes full CKA (leave minibatch=None)"
            )
        return "gram"
    if measure in _EIG:
        return "eig"
    if measure in _KNN:
        return f"knn{check_count(options.get('k', 10), 'k', 2 if measure == 'cknna' else 1)}"
    if measure in NOT_AT_SWEEP:
        raise ValueError(f"{measure!r} is not computed at sweep scale: {NOT_AT_SWEEP[measure]}")
    raise ValueError(f"measure must be one of {SWEEP_MEASURES} at sweep scale; got {measure!r}")


def needs_plain(kind: str) -> bool:
    """Whether a state of `kind` is made from the plain Gram G (kNN: cosines of the rows as
    given) rather than the centred Gc ("gram", "eig")."""
    return kind.startswith("knn")


def _knn_k(kind: str) -> int:
    if kind.startswith("knn") and kind[3:].isdigit():
        return int(kind[3:])
    raise ValueError(f"unknown state kind {kind!r}: 'gram', 'eig' or 'knn<k>'")


def state_bytes(kind: str, n: int) -> int:
    """Bytes of one state of `kind` for n images (module docstring)."""
    if kind == "gram":
        return n * n * 8
    if kind == "eig":
        return (n * n + n) * 8
    return n * _knn_k(kind) * 16


def make_state(
    kind: str, g: np.ndarray | None, gc: np.ndarray | None, name: str
) -> dict[str, np.ndarray]:
    """One unit's state of `kind` (module docstring: fixed shapes given n and k, float64 and
    int64) from its Grams (`grams`; "gram" and "eig" need gc, "knnK" needs g). ValueError
    naming `name` where the in-memory measure refuses: fewer than 3 images, constant features
    ("gram", "eig"), an all-zero row or k >= n ("knnK")."""
    need, what = (g, "plain") if needs_plain(kind) else (gc, "centred")
    if kind not in ("gram", "eig"):
        _knn_k(kind)
    if need is None:
        raise ValueError(f"a {kind!r} state needs the {what} Gram: grams(..., {what}=True)")
    m = np.asarray(need, dtype=np.float64)
    n = m.shape[0]
    if n < 3:
        raise ValueError(f"{name} has n = {n} images; the measures need at least 3")
    if kind.startswith("knn"):
        nb = neighbours_from_gram(m, _knn_k(kind), name)
        return {"table": nb.table, "sims": nb.sims}
    if not np.trace(m) > 0:
        raise ValueError(
            f"{name} has constant features (zero variance after centring), so its CKA, "
            "shape metrics and CCA are undefined"
        )
    if kind == "gram":
        return {"gram": m}
    scaled, e = unit_scaled(m)  # eigh at unit scale; the eigenvalues scaled back exactly
    lam, u = np.linalg.eigh(scaled)
    lam = np.maximum(np.ldexp(lam[::-1], e), 0.0)
    return {"u": np.ascontiguousarray(u[:, ::-1]), "lam": lam}


def _n(states_a: list[dict], states_b: list[dict] | None, key: str, names: Sequence[str]) -> int:
    n = int(states_a[0][key].shape[0])
    for s, nm in zip([*states_a, *(states_b or [])], names, strict=False):
        if int(s[key].shape[0]) != n:
            raise ValueError(f"{nm}: its state has {s[key].shape[0]} images but others {n}")
    return n


def tile(
    measure: str,
    states_a: list[dict],
    states_b: list[dict] | None,
    options: dict,
    names_a: list[str],
    names_b: list[str],
) -> np.ndarray:
    """(len(a), len(b)) float64 block of `measure` from the units' states (make_state of
    state_kind(measure, options)); states_b None: all pairs of a, with fastrsa.similarity's
    conventions (module docstring). options: merged with similarity's defaults; cka kernel
    "linear" | "rbf" (threshold; rbf from Gc's squared distances), debiased; svcca/cca
    variance; procrustes alpha, score; knn k (the states' k). Errors name the unit.

    Memory: both blocks of states, plus for cka one centred n x n copy per state, for the eig
    measures each unit's (n, rank) basis, for kNN each unit's sorted keys (n·k·16 bytes)."""
    kind = state_kind(measure, options)
    same = states_b is None
    names = [*names_a, *([] if same else names_b)]
    if not states_a or (states_b is not None and not states_b):
        return np.empty((len(states_a), len(states_a) if same else len(states_b or [])))
    if kind == "gram":
        return _cka(states_a, states_b, options, names_a, names_b)
    if kind == "eig":
        n = _n(states_a, states_b, "lam", names)
        if n < 3:
            raise ValueError(f"{names_a[0]} has n = {n} images; {measure} needs at least 3")
        return _eig(measure, states_a, states_b, options, names_a, names_b)
    return _knn(measure, int(kind[3:]), states_a, states_b, names_a, names_b)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _cka(
    states_a: list[dict],
    states_b: list[dict] | None,
    options: dict,
    names_a: list[str],
    names_b: list[str],
) -> np.ndarray:
    kernel = options.get("kernel", "linear")
    debiased = options.get("debiased")
    debiased = False if debiased is None else _flag(debiased, "debiased")
    threshold = options.get("threshold", 1.0)
    if kernel == "rbf" and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float | np.floating)
        or not (np.isfinite(threshold) and threshold > 0)
    ):
        raise ValueError(f"threshold must be a positive finite number; got {threshold!r}")
    n = _n(states_a, states_b, "gram", [*names_a, *names_b])
    least = 4 if debiased else 3
    if n < least:
        raise ValueError(
            f"{names_a[0]}: CKA needs at least {least} images (rows) here; got n = {n}"
        )

    def flat(states: list[dict], names: list[str]) -> np.ndarray:
        rows = []
        for s, nm in zip(states, names, strict=True):
            k = np.asarray(s["gram"], dtype=np.float64)
            if kernel == "rbf":
                k = centre(rbf_from_sq(sq_distances_from_gram(k), threshold, nm, True), debiased)
            elif debiased:
                k = centre(k, True)
            rows.append(unit_scaled(k)[0].ravel())
        return np.stack(rows)

    fa = flat(states_a, names_a)
    scale = hsic_scale(n, debiased)
    if states_b is None:
        p = fa @ fa.T
        sq = np.diagonal(p).copy()
        out = normalised(p * scale, sq * scale, sq * scale, names_a, names_a)
        return np.asarray(A.symmetrise_unit_diagonal(out))
    fb = flat(states_b, names_b)
    sa, sb = np.einsum("ij,ij->i", fa, fa), np.einsum("ij,ij->i", fb, fb)
    return normalised((fa @ fb.T) * scale, sa * scale, sb * scale, names_a, names_b)


def _eig(
    measure: str,
    states_a: list[dict],
    states_b: list[dict] | None,
    options: dict,
    names_a: list[str],
    names_b: list[str],
) -> np.ndarray:
    if measure in ("svcca", "cca"):
        variance = check_variance(options.get("variance", 0.99 if measure == "svcca" else 1.0))
        label = "SVCCA" if measure == "svcca" or variance < 1 else "CCA"

        def basis(s: dict, nm: str) -> Any:
            return reduced_from_eig(s["u"], s["lam"], variance, nm, label)

        def pair(a: Any, b: Any) -> float:
            return pair_cca(a, b)

        diag = 1.0
    else:
        score = "nbs" if measure == "nbs" else options.get("score", "angular")
        alpha = 1.0 if measure == "nbs" else check_alpha(options.get("alpha", 1.0), score)

        def basis(s: dict, nm: str) -> Any:
            return basis_from_eig(s["u"], s["lam"], alpha, nm)

        def pair(a: Any, b: Any) -> float:
            return pair_score(a[0], b[0], a[1], b[1], score)

        diag = 1.0 if score == "nbs" else 0.0
    ba = [basis(s, nm) for s, nm in zip(states_a, names_a, strict=True)]
    same = states_b is None
    bb = ba if states_b is None else [basis(s, nm) for s, nm in zip(states_b, names_b, strict=True)]
    out = np.empty((len(ba), len(bb)))
    for i, a in enumerate(ba):
        for j in range(i if same else 0, len(bb)):
            if same and i == j:
                out[i, i] = diag
                continue
            out[i, j] = pair(a, bb[j])
            if same:
                out[j, i] = out[i, j]
    return out


def _graphs(states: list[dict], names: list[str], k: int) -> list[Neighbours]:
    out = []
    for s, nm in zip(states, names, strict=True):
        table = np.asarray(s["table"], dtype=np.int64)
        if table.ndim != 2 or table.shape[1] != k:
            raise ValueError(
                f"{nm}: its kNN state has k = {table.shape[-1]}, but the measure asks k = {k}; "
                "make the states with this k"
            )
        out.append(Neighbours.from_table(table, np.asarray(s["sims"], dtype=np.float64)))
    return out


def _knn(
    measure: str,
    k: int,
    states_a: list[dict],
    states_b: list[dict] | None,
    names_a: list[str],
    names_b: list[str],
) -> np.ndarray:
    n = _n(states_a, states_b, "table", [*names_a, *names_b])
    check_k(k, n, names_a[0], 2 if measure == "cknna" else 1, _KNN_LABEL[measure])
    ga = _graphs(states_a, names_a, k)
    gb = None if states_b is None else _graphs(states_b, names_b, k)
    if measure == "cknna":
        return cknna_of_graphs(ga, gb, names_a, names_b)
    return overlap_matrix(ga, gb, jaccard=measure == "jaccard-knn")
