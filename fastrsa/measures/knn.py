"""k-nearest-neighbour alignment of many models at once: mutual kNN and CKNNA (Huh, Cheung,
Wang & Isola, "The Platonic Representation Hypothesis", ICML 2024; minyoungg/platonic-rep
`metrics.py`: `mutual_knn`, `cknna`, `compute_nearest_neighbors`) and Jaccard kNN (Klabunde et
al., ReSi, ICLR 2025; mklabunde/resi `repsim/measures/nearest_neighbor.py`:
`jaccard_similarity`).

Neighbours. Each model's rows (images) are L2-normalised (platonic-rep's `F.normalize` before
every metric; ReSi's default `inner="cosine"`), and N_k(i) is the k rows j != i of largest
cosine similarity s_ij = <x_i, x_j> / (|x_i| |x_j|), computed in float64. Self is always
excluded, also when a duplicate of row i exists (ReSi drops the first returned neighbour instead,
which may be the duplicate). Ties: rows are ordered by a stable sort of -s_ij, so among equal
similarities the lower row index comes first, at the k-th place too (platonic-rep's torch
argsort / topk leave ties unspecified). Neither paper's outlier clamping (platonic-rep's
`prepare_features`) nor ReSi's spatial flattening is done here: pass the features you want
compared. A row of zeros has no cosine: a ValueError names the model and the row.

Measures (all in float64; for models A, B on the same n images):

    mutual kNN   mean_i |N_A(i) ∩ N_B(i)| / k                 in [0, 1], symmetric, diagonal 1
    Jaccard kNN  mean_i |N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)|   in [0, 1], symmetric, diagonal 1
    CKNNA        h(A, B) / sqrt(h(A, A) h(B, B))                 larger is more similar

with h(A, B) = HSIC_unbiased(M ∘ K, M ∘ L) of platonic-rep (`hsic_unbiased`, Song et al. 2012
eq. 5, as they write it for possibly non-symmetric inputs):
    [sum(K̃ ∘ L̃ᵀ) + sum(K̃) sum(L̃) / ((n-1)(n-2)) - 2 sum(K̃ L̃) / (n-2)] / (n(n-3)),
K, L the cosine Grams, M_ij = [j ∈ N_A(i)] [j ∈ N_B(i)] (a row-wise mask, not symmetric), K̃ =
M ∘ K, L̃ = M ∘ L (zero diagonals). Because M is not symmetric, sum(K̃ L̃) = Σ_j colsum(K̃)_j
rowsum(L̃)_j differs from sum(L̃ K̃): CKNNA(A, B) != CKNNA(B, A) in general (platonic-rep's own
definition; all ordered pairs are computed). Differences from their code: no 1e-6 added to the
denominator (it makes their value depend on the features' scale), and a model whose h(A, A)
is not positive is refused (their code returns NaN or a huge value). k >= 2 as theirs requires,
n >= 4 (the unbiased HSIC divides by n(n-3)). With k = n - 1 the mask is all off-diagonal
pairs and CKNNA is the debiased linear CKA of the normalised rows.

Cost: per model once, the n x n similarities in blocks of rows within the memory budget and a
partial sort (numpy: O(n²) per model; torch: a stable sort per row on the tensor's own device,
then the (n, k) table comes to the host); per pair, O(n k log(n k)) on two sorted key arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _arrays as A
from .._checks import check_count
from .._memory import budget_for

__all__ = [
    "Neighbours",
    "all_pairs",
    "check_k",
    "cknna",
    "cknna_matrix",
    "cknna_of_graphs",
    "jaccard_knn",
    "jaccard_knn_matrix",
    "knn_table",
    "masked_hsic",
    "mutual_knn",
    "mutual_knn_matrix",
    "neighbours",
    "neighbours_from_gram",
    "overlap_matrix",
]

# bytes of working memory per entry of a block of the n x n similarity (the similarity, its
# negation or sort values, sort indices, masks)
_BYTES_PER_ENTRY = 40
# cosines from a Gram within this of ±1 are taken as ±1 (neighbours_from_gram)
_PARALLEL = 8 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class Neighbours:
    """One model's kNN graph: the per-model summary every kNN measure uses.

    table: (n, k) int64, row i's neighbours, most similar first (ties: lower index first).
    sims: (n, k) float64, their cosine similarities s_ij.
    keys: (n * k,) int64, i * n + j over all (i, j ∈ N(i)), sorted ascending.
    key_sims: (n * k,) float64, s_ij in the order of `keys`."""

    table: np.ndarray
    sims: np.ndarray
    keys: np.ndarray
    key_sims: np.ndarray

    @property
    def n(self) -> int:
        return int(self.table.shape[0])

    @property
    def k(self) -> int:
        return int(self.table.shape[1])

    @classmethod
    def from_table(cls, table: np.ndarray, sims: np.ndarray) -> Neighbours:
        n = table.shape[0]
        order = np.argsort(table, axis=1, kind="stable")
        cols = np.take_along_axis(table, order, axis=1)
        keys = (np.arange(n, dtype=np.int64)[:, None] * n + cols).ravel()
        return cls(table, sims, keys, np.take_along_axis(sims, order, axis=1).ravel())


def check_k(k: Any, n: int, name: str, least: int, measure: str) -> int:
    """k as an int >= `least` and <= n - 1; ValueError naming `name` (and `measure` when n is
    too small)."""
    k = check_count(k, "k", least)
    if n < 3 or n < least + 2:
        raise ValueError(f"{measure} needs at least {max(3, least + 2)} images; {name} has n = {n}")
    if k >= n:
        raise ValueError(f"k = {k} must be at most n - 1 = {n - 1} (the other rows of {name})")
    return k


def _unit_rows(x: Any, name: str) -> Any:
    """Rows L2-normalised in float64 (numpy, or torch on x's device); a row is first rescaled
    by a power of two when its scale is unsafe; ValueError for an all-zero row."""
    lo, hi = A.check_values(x, name, refuse="zero", what="feature row")
    x = A.rescaled(x, lo, hi)[0]
    if A.is_torch(x):
        x = x.double()
        return x / x.norm(dim=1, keepdim=True)
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _top_numpy(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k columns of a stable argsort of -s per row (and their s), by a partition."""
    b = s.shape[0]
    neg = -s
    t = np.partition(neg, k - 1, axis=1)[:, k - 1 : k]
    eq = neg == t
    need = k - (neg < t).sum(axis=1, keepdims=True)
    sel = (neg < t) | (eq & (np.cumsum(eq, axis=1) <= need))
    rows, flat = np.nonzero(sel)  # exactly k per row, columns ascending
    cols = flat.reshape(b, k)
    vals = s[rows.reshape(b, k), cols]
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cols, order, 1), np.take_along_axis(vals, order, 1)


def neighbours(x: Any, k: int, name: str = "features", budget: int | None = None) -> Neighbours:
    """(n, d) features (numpy or torch, any float dtype) -> their `Neighbours` by cosine
    similarity (self excluded, ties to the lower index; see the module docstring). The n x n
    similarities are computed in float64 in blocks of rows of at most `budget` bytes (default
    fastrsa's memory budget for x's device); torch tensors on their own device."""
    n = int(x.shape[0])
    k = check_k(k, n, name, 1, "kNN")
    xn = _unit_rows(x, name)
    torch_in = A.is_torch(xn)
    if budget is None:
        budget = budget_for(None, xn.device if torch_in else None)
    rows = max(1, min(n, budget // (n * _BYTES_PER_ENTRY)))
    if not torch_in:
        return _from_blocks(lambda r0, r1: xn[r0:r1] @ xn.T, n, k, rows)
    import torch

    table = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        s = xn[r0:r1] @ xn.T
        ti = torch.arange(r1 - r0, device=s.device)
        s[ti, ti + r0] = -float("inf")
        values, idx = torch.sort(-s, dim=1, stable=True)
        table[r0:r1] = idx[:, :k].cpu().numpy()
        sims[r0:r1] = (-values[:, :k]).cpu().numpy()
    return Neighbours.from_table(table, sims)


def _from_blocks(block: Callable[[int, int], np.ndarray], n: int, k: int, rows: int) -> Neighbours:
    """Neighbours from the float64 similarities of rows r0:r1 with all rows, block(r0, r1)
    (a new (r1 - r0, n) array), `rows` rows at a time: self excluded, a stable top k."""
    table = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        s = block(r0, r1)
        ar = np.arange(r1 - r0)
        s[ar, ar + r0] = -np.inf
        table[r0:r1], sims[r0:r1] = _top_numpy(s, k)
    return Neighbours.from_table(table, sims)


def neighbours_from_gram(
    g: np.ndarray, k: int, name: str = "features", budget: int | None = None
) -> Neighbours:
    """`neighbours` from the (n, n) float64 Gram G = X Xᵀ of the features as given (not
    centred): cosine s_ij = G_ij / sqrt(G_ii) / sqrt(G_jj), self excluded, ties to the lower
    index, in blocks of rows of at most `budget` bytes (default fastrsa's memory budget).
    The cosines agree with `neighbours`' to rounding (a few 1e-16): cosines within 8 eps of ±1
    are set to ±1 (parallel rows: d = 1, where `neighbours`' normalised rows give exactly ±1,
    or duplicates), so those ties break by index as there; only other similarities tied within
    rounding may be ordered differently. ValueError naming `name` and the row for an all-zero
    row (G_ii = 0), as `neighbours`."""
    g = np.asarray(g, dtype=np.float64)
    n = int(g.shape[0])
    k = check_k(k, n, name, 1, "kNN")
    norms = np.sqrt(np.diagonal(g))
    bad = np.flatnonzero(~(norms > 0))
    if bad.size:
        raise ValueError(
            "feature row is all zeros (its norm is 0, so the cosine is undefined): "
            f"{name}: row {bad[0]} ({bad.size} such in all)"
        )
    if budget is None:
        budget = budget_for(None, None)
    rows = max(1, min(n, budget // (n * _BYTES_PER_ENTRY)))

    def block(r0: int, r1: int) -> np.ndarray:
        s = g[r0:r1] / norms[r0:r1, None] / norms[None, :]
        near = np.abs(s) >= 1 - _PARALLEL
        s[near] = np.sign(s[near])
        return s

    return _from_blocks(block, n, k, rows)


def knn_table(x: Any, k: int, name: str = "features", budget: int | None = None) -> np.ndarray:
    """(n, d) features -> (n, k) int64: each row's k nearest other rows by cosine similarity,
    most similar first, ties broken by the lower row index (`neighbours(...).table`)."""
    return neighbours(x, k, name, budget).table


def _shared(a: Neighbours, b: Neighbours) -> tuple[np.ndarray, np.ndarray]:
    """For each key of a: whether b has it too, and where (positions clipped into b)."""
    pos = np.minimum(np.searchsorted(b.keys, a.keys), b.keys.size - 1)
    return b.keys[pos] == a.keys, pos


def _counts(a: Neighbours, b: Neighbours) -> np.ndarray:
    """(n,) |N_A(i) ∩ N_B(i)|."""
    return _shared(a, b)[0].reshape(a.n, a.k).sum(axis=1)


def mutual_knn(a: Neighbours, b: Neighbours) -> float:
    """mean_i |N_A(i) ∩ N_B(i)| / k (platonic-rep `mutual_knn`)."""
    return float(_counts(a, b).sum() / (a.n * a.k))


def jaccard_knn(a: Neighbours, b: Neighbours) -> float:
    """mean_i |N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)| (ReSi `jaccard_similarity`)."""
    c = _counts(a, b)
    return float(np.mean(c / (2 * a.k - c)))


def masked_hsic(a: Neighbours, b: Neighbours) -> float:
    """platonic-rep's unbiased HSIC of M ∘ K and M ∘ L, M the row-wise mutual-kNN mask (the
    module docstring), from the two kNN graphs in O(n k log(n k))."""
    n = a.n
    hit, pos = _shared(a, b)
    keys = a.keys[hit]  # the mask's nonzero (i, j), sorted
    kv, lv = a.key_sims[hit], b.key_sims[pos[hit]]
    i, j = np.divmod(keys, n)
    tr = j * n + i  # (j, i) for each (i, j)
    if keys.size:
        p = np.minimum(np.searchsorted(keys, tr), keys.size - 1)
        both = keys[p] == tr
        cross = float(np.dot(kv[both], lv[p[both]]))  # sum(K̃ ∘ L̃ᵀ)
    else:
        cross = 0.0
    col_k = np.bincount(j, weights=kv, minlength=n)  # column sums of K̃
    row_l = np.bincount(i, weights=lv, minlength=n)  # row sums of L̃
    h = cross + kv.sum() * lv.sum() / ((n - 1) * (n - 2)) - 2 * float(col_k @ row_l) / (n - 2)
    return float(h / (n * (n - 3)))


def cknna(a: Neighbours, b: Neighbours) -> float:
    """CKNNA(A, B) = h(A, B) / sqrt(h(A, A) h(B, B)) with h = `masked_hsic` (not symmetric);
    ValueError when h(A, A) or h(B, B) is not positive."""
    ha, hb = masked_hsic(a, a), masked_hsic(b, b)
    if not (ha > 0 and hb > 0):
        raise ValueError(
            f"CKNNA is undefined: a model's own masked HSIC is not positive ({ha:.3g}, {hb:.3g})"
        )
    return masked_hsic(a, b) / float(np.sqrt(ha * hb))


def overlap_matrix(
    graphs_a: list[Neighbours], graphs_b: list[Neighbours] | None, jaccard: bool = False
) -> np.ndarray:
    """Mutual kNN (or, `jaccard`, Jaccard kNN) of every graph of a with every graph of b (None:
    of a, symmetric, exact ones on the diagonal), (len(a), len(b)) float64, without a loop over
    pairs: with F the models' 0/1 neighbour masks flattened (one sparse row of n k ones per
    model), mutual kNN = (F_a F_bᵀ) / (n k), one sparse product; Jaccard needs each image's
    count c_i, so one sparse product per image i (its rows of the masks), summing
    c_i / (2k - c_i). Counts are integers, so every entry equals the per-pair functions'
    (`mutual_knn`, `jaccard_knn`) exactly."""
    from scipy import sparse

    gb = graphs_a if graphs_b is None else graphs_b
    n, k = graphs_a[0].n, graphs_a[0].k

    def masks(graphs: list[Neighbours], cols: int, keys: list[np.ndarray]) -> Any:
        ptr = np.arange(len(graphs) + 1, dtype=np.int64) * keys[0].size
        data = np.ones(ptr[-1], dtype=np.float64)
        return sparse.csr_matrix((data, np.concatenate(keys), ptr), shape=(len(graphs), cols))

    if not jaccard:
        fa = masks(graphs_a, n * n, [g.keys for g in graphs_a])
        fb = fa if graphs_b is None else masks(gb, n * n, [g.keys for g in gb])
        out = np.asarray((fa @ fb.T).todense(), dtype=np.float64) / (n * k)
    else:
        out = np.zeros((len(graphs_a), len(gb)))
        rows_a = [np.sort(g.table, axis=1) for g in graphs_a]
        rows_b = rows_a if graphs_b is None else [np.sort(g.table, axis=1) for g in gb]
        for i in range(n):
            fa = masks(graphs_a, n, [t[i] for t in rows_a])
            fb = fa if graphs_b is None else masks(gb, n, [t[i] for t in rows_b])
            c = np.asarray((fa @ fb.T).todense(), dtype=np.float64)
            out += c / (2 * k - c)
        out /= n
    if graphs_b is None:
        out = np.minimum(out, out.T)  # exactly symmetric (equal up to summation order)
        np.fill_diagonal(out, 1.0)
    return out


def all_pairs(
    graphs_a: list[Neighbours],
    graphs_b: list[Neighbours] | None,
    pair: Callable[[Neighbours, Neighbours], float],
    symmetric: bool,
) -> np.ndarray:
    """(len(a), len(b)) of pair(a_i, b_j); graphs_b None: all pairs of a (i <= j mirrored when
    `symmetric`, else every ordered pair)."""
    same = graphs_b is None
    gb = graphs_a if graphs_b is None else graphs_b
    out = np.empty((len(graphs_a), len(gb)))
    for i, ga in enumerate(graphs_a):
        for j in range(i if same and symmetric else 0, len(gb)):
            out[i, j] = pair(ga, gb[j])
            if same and symmetric:
                out[j, i] = out[i, j]
    return out


def _graphs(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    k: Any,
    least: int,
    measure: str,
    names_a: Sequence[str],
    names_b: Sequence[str],
    budget: int | None,
) -> tuple[list[Neighbours], list[Neighbours] | None]:
    n = int(models_a[0].shape[0])
    k = check_k(k, n, names_a[0], least, measure)
    ga = [neighbours(x, k, nm, budget) for x, nm in zip(models_a, names_a, strict=True)]
    if models_b is None:
        return ga, None
    return ga, [neighbours(x, k, nm, budget) for x, nm in zip(models_b, names_b, strict=True)]


def mutual_knn_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    k: int = 10,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
    budget: int | None = None,
) -> np.ndarray:
    """Mutual kNN alignment of every model of `models_a` with every one of `models_b` (or of
    `models_a`): (Ba, Bb) float64 in [0, 1], symmetric, 1 for identical neighbour sets."""
    ga, gb = _graphs(models_a, models_b, k, 1, "mutual kNN", names_a, names_b, budget)
    return overlap_matrix(ga, gb)


def jaccard_knn_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    k: int = 10,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
    budget: int | None = None,
) -> np.ndarray:
    """Jaccard kNN similarity of every model of `models_a` with every one of `models_b` (or of
    `models_a`): (Ba, Bb) float64 in [0, 1], symmetric, 1 for identical neighbour sets."""
    ga, gb = _graphs(models_a, models_b, k, 1, "Jaccard kNN", names_a, names_b, budget)
    return overlap_matrix(ga, gb, jaccard=True)


def cknna_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    k: int = 10,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
    budget: int | None = None,
) -> np.ndarray:
    """CKNNA of every model of `models_a` (rows) with every one of `models_b` (or of
    `models_a`): (Ba, Bb) float64, NOT symmetric (every ordered pair computed), diagonal 1 for
    all pairs of `models_a`. ValueError naming a model whose own masked HSIC is not positive."""
    ga, gb = _graphs(models_a, models_b, k, 2, "CKNNA", names_a, names_b, budget)
    return cknna_of_graphs(ga, gb, names_a, names_b)


def cknna_of_graphs(
    ga: list[Neighbours],
    gb: list[Neighbours] | None,
    names_a: Sequence[str],
    names_b: Sequence[str],
) -> np.ndarray:
    """cknna_matrix from the models' kNN graphs (every ordered pair; diagonal 1 when gb is
    None); ValueError naming a model whose own masked HSIC is not positive."""
    selves = []
    for graphs, names in ((ga, names_a), (gb, names_b)):
        h = np.array([masked_hsic(g, g) for g in graphs or []])
        bad = np.flatnonzero(~(h > 0))
        if bad.size:
            raise ValueError(
                f"{names[bad[0]]}: its {ga[0].k}-NN-masked cosine Gram has unbiased HSIC "
                f"{h[bad[0]]:.3g} with itself (not positive), so CKNNA is undefined; try a larger k"
            )
        selves.append(h)
    ha, hb = selves[0], selves[1] if gb is not None else selves[0]
    out = all_pairs(ga, gb, masked_hsic, symmetric=False) / np.sqrt(ha[:, None] * hb[None, :])
    if gb is None:
        np.fill_diagonal(out, 1.0)
    return out
