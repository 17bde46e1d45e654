"""Shared pieces of the differential tests (tests/test_differential.py): hypothesis strategies
for adversarial inputs, the scipy float64 reference on the exact values fastrsa sees, and
assertions that name the worst entry.

An input is described by a small frozen `Case` (dtype, shape, value distribution, scale, row
operation, memory layout, seed); `Case.build()` turns it into the numpy array or torch tensor
passed to fastrsa, deterministically. Hypothesis prints the falsifying `Case(...)`, so a failure
replays outside pytest with:

    import sys; sys.path.insert(0, "tests")
    from helpers_differential import Case
    x = Case(...).build()

The reference always works on `exact_values(x)`: the input's own values converted exactly to
float64 (float16/bfloat16/float32 arrays converted, never regenerated), or the integers
themselves where float64 would round them.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from fastrsa.reference import compare_ref, rank_ref, rdm_ref

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test dependency
    torch = None

# ---------------------------------------------------------------------------------------------
# hypothesis settings: derandomized and bounded by default (CI never flakes);
# FASTRSA_FUZZ_EXAMPLES=N raises the example count and draws fresh random examples.

FUZZ_EXAMPLES = int(os.environ.get("FASTRSA_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(default_examples: int, interpreted: bool = False) -> settings:
    """Settings for one property: `default_examples` in CI; FASTRSA_FUZZ_EXAMPLES=N fuzzes with
    N examples (a tenth of them, at least the default, for interpreted Triton)."""
    if FUZZ_EXAMPLES > 0:
        n = max(default_examples, FUZZ_EXAMPLES // 10) if interpreted else FUZZ_EXAMPLES
        extra = {"derandomize": False}
    else:
        n = default_examples
        extra = {"derandomize": True, "database": None}
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
        **extra,
    )


# ---------------------------------------------------------------------------------------------
# dtypes

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
LOW_PRECISION = ("float32", "float16", "bfloat16")  # results float32
F32_MAX = float(np.finfo(np.float32).max)
# Largest |value| drawn for float64: squares and Gram sums of these stay finite in scipy.
F64_LIMIT = 1e150
INT53 = 2**53

# Powers of ten a dtype's values may be scaled by (before clipping to the dtype's range).
SCALE_EXPONENTS = {
    "float64": (-30, 30),
    "float32": (-30, 30),
    "bfloat16": (-30, 30),
    "float16": (-2, 3),
    "int64": (0, 15),
    "int32": (0, 9),
    "int16": (0, 4),
    "int8": (0, 2),
    "uint8": (0, 2),
    "bool": (0, 0),
}


def max_abs(dtype: str, int_limit: int | None = INT53) -> float:
    """Largest |value| the dtype holds (finite), capped for float64 and, by default, for int64
    at 2**53 (exact in float64)."""
    if dtype == "float64":
        return F64_LIMIT
    if dtype in ("float32", "bfloat16"):
        return float(torch.finfo(torch.bfloat16).max) if dtype == "bfloat16" else F32_MAX
    if dtype == "float16":
        return float(np.finfo(np.float16).max)
    if dtype == "bool":
        return 1.0
    top = float(np.iinfo(np.dtype(dtype)).max)
    if dtype == "int64" and int_limit is not None:
        top = float(int_limit)
    return top


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES or dtype == "bool"


def result_is_wide(*dtypes: str) -> bool:
    """float64 results for float64 or integer input; float32 when every input is float32 or
    lower precision."""
    return not all(d in LOW_PRECISION for d in dtypes)


# ---------------------------------------------------------------------------------------------
# the input description


@dataclass(frozen=True)
class Case:
    """One input array, built deterministically from these fields.

    dist: "normal" N(0,1); "t1"/"t2" Student-t with 1/2 dof; "offset" 10**offset_exp + N(0,1);
      "quantised" N(0,1) rounded to a few levels (many ties); "sparse" mostly zeros; "huge"
      (int64 only) values over the full int64 range, clustered beyond 2**53 so that many differ
      by 1.
    scale_exp: the values are multiplied by 10**scale_exp (then clipped to the dtype's range;
      integers rounded).
    row_op: "none"; "repeat" (copies of other rows); "shift" (other rows plus a constant);
      "near_dup" (other rows plus 1e-3 * N(0,1)), applied to some rows along axis -2;
      "rescale" (each row times 10**spread, 1 or 10**-spread at random).
    layout: numpy "C", "F", "slice2@<axis>" (a step-2 view of a larger array whose skipped
      entries are NaN or extreme integers), "neg@<axis>" (negative stride); torch "C", "T"
      (`.transpose(-1,-2).contiguous().transpose(-1,-2)`), "expand" (a stride-0 broadcast of
      the first slice along axis 0), "slice2@<axis>".
    """

    kind: str  # "numpy" | "torch"
    dtype: str
    shape: tuple
    dist: str = "normal"
    scale_exp: int = 0
    offset_exp: int = 0
    row_op: str = "none"
    layout: str = "C"
    seed: int = 0
    spread: int = 0
    int_limit: int | None = INT53

    # -- values ---------------------------------------------------------------------------
    def _base(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        if self.dist == "normal":
            return rng.standard_normal(shape)
        if self.dist in ("t1", "t2"):
            return np.clip(rng.standard_t(int(self.dist[1]), shape), -1e12, 1e12)
        if self.dist == "offset":
            return 10.0**self.offset_exp + rng.standard_normal(shape)
        if self.dist == "quantised":
            levels = int(rng.integers(1, 4))
            return np.round(rng.standard_normal(shape) * levels) / levels
        if self.dist == "sparse":
            keep = rng.random(shape) < rng.uniform(0.05, 0.3)
            return rng.standard_normal(shape) * keep
        raise ValueError(f"unknown dist {self.dist!r}")

    def _row_op(self, rng: np.random.Generator, v: np.ndarray) -> np.ndarray:
        if self.row_op == "none" or v.ndim < 2 or v.shape[-2] < 2:
            return v
        rows = v.shape[-2]
        v = v.copy()
        flat = v.reshape(-1, rows, v.shape[-1])
        if self.row_op == "rescale":  # rows of very different norms side by side
            exps = self.spread * rng.integers(-1, 2, size=flat.shape[:-1])
            return (flat * 10.0 ** exps[..., None]).reshape(v.shape)
        for mat in flat:
            for _ in range(int(rng.integers(1, max(2, rows // 3) + 1))):
                i, j = rng.choice(rows, 2, replace=False)
                if self.row_op == "repeat":
                    mat[j] = mat[i]
                elif self.row_op == "shift":
                    mat[j] = mat[i] + 3.0 * rng.standard_normal()
                elif self.row_op == "near_dup":
                    mat[j] = mat[i] + 1e-3 * rng.standard_normal(mat.shape[-1])
                else:
                    raise ValueError(f"unknown row_op {self.row_op!r}")
        return flat.reshape(v.shape)

    def _huge_int64(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Full-range int64 values; half the entries clustered near one huge value (ties and
        neighbours that differ by 1 beyond 2**53)."""
        lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        out = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
        centre = int(rng.choice([INT53, -INT53, 2**62, -(2**62), hi - 8, lo + 8]))
        near = rng.random(shape) < 0.5
        out[near] = centre + rng.integers(-3, 4, size=int(near.sum()))
        return out

    def values(self) -> np.ndarray:
        """The logical values in the target dtype, as a numpy array (bfloat16: float64 values
        before the bfloat16 rounding, which `build` does in torch)."""
        rng = np.random.default_rng(self.seed)
        shape = tuple(self.shape)
        if self.dist == "huge":
            return self._huge_int64(rng, shape)
        v = self._row_op(rng, self._base(rng, shape)) * 10.0**self.scale_exp
        if self.layout == "expand":
            v = np.broadcast_to(v[:1], v.shape).copy()
        top = max_abs(self.dtype, self.int_limit)
        if self.dtype == "bool":
            return v > 0
        if is_int(self.dtype):
            if self.dtype.startswith("uint"):
                v = np.abs(v)
            lo = 0.0 if self.dtype.startswith("uint") else -top
            ints = np.clip(np.round(v), lo, top)
            # clip in float64 can land on 2**63 for int64; stay in range
            ints = np.where(ints >= 2.0**63, 2.0**63 - 1024, ints)
            return ints.astype(np.dtype(self.dtype))
        v = np.clip(v, -top, top)
        if self.dtype in ("float64", "bfloat16"):
            return v
        return v.astype(np.dtype(self.dtype))

    # -- the array passed to fastrsa ------------------------------------------------------
    def build(self):
        v = self.values()
        if self.kind == "numpy":
            return _numpy_layout(v, self.layout)
        return _torch_layout(v, self.dtype, self.layout)


def _junk(dtype) -> object:
    """Filler for the entries a strided view skips: NaN for floats, an extreme for integers
    (a kernel that ignores strides then reads something conspicuous)."""
    if np.dtype(dtype).kind == "f":
        return np.nan
    if np.dtype(dtype).kind == "b":
        return True
    return np.iinfo(dtype).max


def _parse_axis(layout: str) -> int:
    return int(layout.split("@")[1])


def _numpy_layout(v: np.ndarray, layout: str) -> np.ndarray:
    if layout == "C":
        return np.ascontiguousarray(v)
    if layout == "F":
        return np.asfortranarray(v)
    axis = _parse_axis(layout)
    if layout.startswith("slice2"):
        shape = list(v.shape)
        shape[axis] *= 2
        big = np.full(shape, _junk(v.dtype), dtype=v.dtype)
        index = [slice(None)] * v.ndim
        index[axis] = slice(None, None, 2)
        big[tuple(index)] = v
        return big[tuple(index)]
    if layout.startswith("neg"):
        flipped = np.ascontiguousarray(np.flip(v, axis))
        return np.flip(flipped, axis)  # a view with a negative stride along `axis`
    raise ValueError(f"unknown numpy layout {layout!r}")


TORCH_DTYPES = {
    "float64": "float64",
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


def _torch_layout(v: np.ndarray, dtype: str, layout: str):
    tdtype = getattr(torch, TORCH_DTYPES[dtype])
    t = torch.from_numpy(np.ascontiguousarray(v)).to(tdtype)
    if layout == "C":
        return t
    if layout == "T":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "expand":  # values were made equal along axis 0 by Case.values
        return t[:1].expand(*t.shape)
    if layout.startswith("slice2"):
        axis = _parse_axis(layout)
        shape = list(t.shape)
        shape[axis] *= 2
        junk = _junk(np.float32 if t.is_floating_point() else v.dtype)
        if dtype == "uint8":
            junk = 255
        big = torch.full(shape, junk, dtype=tdtype)
        index = [slice(None)] * t.ndim
        index[axis] = slice(None, None, 2)
        big[tuple(index)] = t
        return big[tuple(index)]
    raise ValueError(f"unknown torch layout {layout!r}")


# ---------------------------------------------------------------------------------------------
# exact values of an input, and the kind / dtype of results


def is_tensor(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def dtype_name(x) -> str:
    return str(x.dtype).replace("torch.", "")


def exact_values(x) -> np.ndarray:
    """The input's values, exactly: float64 for floating input, the integers for integer input
    (bools as int64)."""
    if is_tensor(x):
        if x.is_floating_point():
            return x.detach().cpu().double().numpy()
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind == "b":
        return x.astype(np.int64)
    if x.dtype.kind in "iu":
        return np.array(x)
    return x.astype(np.float64)


def to_numpy64(out) -> np.ndarray:
    if is_tensor(out):
        return out.detach().cpu().double().numpy()
    return np.asarray(out, dtype=np.float64)


def check_kind_dtype(out, x, wide: bool) -> None:
    """Same kind as the input (numpy array / torch tensor on the input's device); float64 when
    `wide` else float32."""
    if is_tensor(x):
        assert is_tensor(out), f"torch input must give a torch result, got {type(out)}"
        assert out.device == x.device, f"result on {out.device}, input on {x.device}"
        want = torch.float64 if wide else torch.float32
    else:
        assert isinstance(out, np.ndarray), f"numpy input must give a numpy result, {type(out)}"
        want = np.float64 if wide else np.float32
    assert out.dtype == want, f"result dtype {out.dtype}, expected {want}"


# ---------------------------------------------------------------------------------------------
# what the API must refuse


def refused_rows(v: np.ndarray, refuse: str) -> bool:
    """True when some row (last axis) is constant ("constant") or all zero ("zero")."""
    if refuse == "constant":
        return bool((v.max(axis=-1) == v.min(axis=-1)).any())
    return bool((v == 0).all(axis=-1).any())


# ---------------------------------------------------------------------------------------------
# the scipy reference on exact values


def rdm_reference(v: np.ndarray, metric: str) -> np.ndarray:
    """fastrsa.reference.rdm_ref (scipy pdist in float64, integers exactly) on v (..., n, d)."""
    n, d = v.shape[-2:]
    out = rdm_ref(v.reshape(-1, n, d), metric)
    return out.reshape(*v.shape[:-2], n * (n - 1) // 2)


def rank_reference(v: np.ndarray) -> np.ndarray:
    """fastrsa.reference.rank_ref: scipy's rankdata "average", integers ranked as integers."""
    return rank_ref(v.reshape(-1, v.shape[-1])).reshape(v.shape)


def compare_reference(a: np.ndarray, b: np.ndarray | None, method: str) -> np.ndarray:
    """fastrsa.reference.compare_ref (scipy per pair in float64, integers exactly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_ref(a, b, method)


# ---------------------------------------------------------------------------------------------
# assertions that name the worst entry


def _describe(index, got, ref, err, bound) -> str:
    return (
        f"worst at {tuple(int(i) for i in index)}: got {got!r}, scipy {ref!r}, "
        f"|error| {err:.3g} > bound {bound:.3g}"
    )


def assert_finite(out: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(out)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} non-finite entries of {out.size}, first at {idx}: "
            f"{out[idx]!r}"
        )


def assert_within(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, what: str) -> None:
    """|got - ref| <= atol + rtol * |ref| everywhere, else an error naming the worst entry."""
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, scipy {ref.shape}"
    err = np.abs(got - ref)
    bound = atol + rtol * np.abs(ref)
    excess = err - bound
    if (excess > 0).any():
        idx = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise AssertionError(
            f"{what}: {int((excess > 0).sum())} of {err.size} entries out of tolerance; "
            + _describe(idx, float(got[idx]), float(ref[idx]), float(err[idx]), float(bound[idx]))
        )


def assert_exact(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, scipy {ref.shape}"
    bad = got != ref
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {got.size} ranks differ; first at {idx}: "
            f"got {got[idx]!r}, scipy {ref[idx]!r}"
        )


def pair_index(n: int, k: int) -> tuple[int, int]:
    """(i, j) of condensed index k of an n x n RDM."""
    i = 0
    while k >= n - 1 - i:
        k -= n - 1 - i
        i += 1
    return i, i + 1 + k


# ---------------------------------------------------------------------------------------------
# strategies

NUMPY_LAYOUTS_2D = ("C", "F", "slice2@-1", "slice2@-2", "neg@-1", "neg@-2")
TORCH_LAYOUTS_2D = ("C", "T", "expand", "slice2@-1", "slice2@-2")


def _layouts(kind: str, ndim: int) -> tuple:
    if kind == "numpy":
        extra = ("slice2@0", "neg@0") if ndim >= 3 else ()
        return (NUMPY_LAYOUTS_2D if ndim >= 2 else ("C", "slice2@-1", "neg@-1")) + extra
    if ndim < 2:
        return ("C", "slice2@-1")
    return TORCH_LAYOUTS_2D + (("slice2@0",) if ndim >= 3 else ())


FLOAT_DISTS = ("normal", "t1", "t2", "offset", "quantised", "sparse")
OFFSET_RATIO_EXP = {"float64": 3, "float32": 6, "float16": 2, "bfloat16": 2}


@st.composite
def cases(
    draw,
    shape,
    kinds=("numpy", "torch"),
    dtypes=FLOAT_DTYPES + INT_DTYPES,
    dists=FLOAT_DISTS,
    row_ops=("none", "repeat", "shift", "near_dup", "rescale"),
    kind=None,
    int_limit=INT53,
):
    """A Case of the given shape: dtype, distribution, scale, row operation and layout drawn."""
    kind = kind or draw(st.sampled_from(kinds))
    allowed = [d for d in dtypes if not (kind == "numpy" and d == "bfloat16")]
    dtype = draw(st.sampled_from(allowed))
    dist_choices = list(dists)
    if dtype == "int64" and int_limit is None:
        dist_choices.append("huge")
    dist = draw(st.sampled_from(dist_choices))
    lo, hi = SCALE_EXPONENTS[dtype]
    offset_exp = 0
    if dist == "offset":
        if is_int(dtype):  # keep offset * scale inside the dtype's range
            top = math.log10(max_abs(dtype, int_limit))
            offset_exp = draw(st.integers(0, max(0, min(6, int(top) - hi - 1))))
        else:
            offset_exp = draw(st.integers(0, OFFSET_RATIO_EXP[dtype]))
            if dtype == "float16":  # offset * scale must stay below float16's 65504
                hi = min(hi, 4 - offset_exp)
    scale_exp = draw(st.integers(lo, hi))
    row_op = draw(st.sampled_from(row_ops))
    spread = 0
    if row_op == "rescale":  # rows scaled apart, all within the dtype's scale range
        room = max(1, min(hi - scale_exp, scale_exp - lo))
        spread = draw(st.sampled_from([k for k in (1, 3, 10, 20, 30) if k <= room] or [1]))
    layout = draw(st.sampled_from(_layouts(kind, len(shape))))
    if layout == "expand" and shape[0] < 1:
        layout = "C"
    seed = draw(st.integers(0, 2**32 - 1))
    return Case(
        kind,
        dtype,
        tuple(shape),
        dist,
        scale_exp,
        offset_exp,
        row_op,
        layout,
        seed,
        spread,
        int_limit,
    )


@st.composite
def feature_shapes(draw, n=(3, 40), d=(1, 64), batch=(0, 2), batch_size=(1, 3), min_d=1):
    """(..., n, d) with 0-2 leading batch dims."""
    lead = draw(st.lists(st.integers(*batch_size), min_size=batch[0], max_size=batch[1]))
    nn = draw(st.integers(*n))
    dd = draw(st.integers(max(min_d, d[0]), d[1]))
    return (*lead, nn, dd)


def reproducer(name: str, **kwargs) -> str:
    """A one-line python call that replays a failing check."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name}({args})"


# ---------------------------------------------------------------------------------------------
# the measures written out plainly in float64, one pair at a time (tests/test_measures.py,
# tests/test_trust_numerics.py): the papers' formulas and the authors' definitions


def centred(x):
    return x - x.mean(axis=0, keepdims=True)


def linear_cka_features(x, y):
    """Kornblith et al. (2019), eq. of linear CKA in feature space: ‖YᵀX‖²_F /
    (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred features."""
    x, y = centred(x), centred(y)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def hsic_biased(k, g):
    """tr(K H L H) / (n-1)²."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ g @ h) / (n - 1) ** 2


def hsic_unbiased(k, g):
    """Song et al. (JMLR 2012), eq. (5): with K̃, L̃ the Grams with zero diagonals,
    [tr(K̃L̃) + 1ᵀK̃1 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1] / (n(n-3))."""
    n = k.shape[0]
    kt = k - np.diag(np.diag(k))
    lt = g - np.diag(np.diag(g))
    one = np.ones(n)
    return (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ kt @ lt @ one)
    ) / (n * (n - 3))


def cka_plain(k, g, debiased=False):
    hsic = hsic_unbiased if debiased else hsic_biased
    return hsic(k, g) / np.sqrt(hsic(k, k) * hsic(g, g))


def rbf_plain(x, threshold):
    """Kornblith's rbf Gram: bandwidth = threshold · median distance (median over all n² squared
    distances, diagonal included)."""
    d2 = cdist(x, x, "sqeuclidean")
    return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))


def gram_plain(x, kernel, threshold=1.0):
    if kernel == "linear":
        return x @ x.T
    if kernel == "rbf":
        return rbf_plain(x, threshold)
    return np.exp(-cdist(x, x, "cityblock") / x.shape[1])  # sklearn laplacian_kernel, gamma=1/d


def all_pairs(fn, xs, ys=None):
    ys = xs if ys is None else ys
    return np.array([[fn(x, y) for y in ys] for x in xs])


def znorm_plain(x):
    """sklearn StandardScaler().fit_transform: (x - mean) / std (ddof 0)."""
    return (x - x.mean(0)) / x.std(0)


def group_norm_plain(x, h, w, c, groups, eps=1e-9):
    """DDS utils.py group_norm, written as loops over images and groups of channels."""
    x4 = x.reshape(len(x), h, w, c).copy()
    per = c // groups
    for i in range(len(x)):
        for g in range(groups):
            block = x4[i, :, :, g * per : (g + 1) * per]
            x4[i, :, :, g * per : (g + 1) * per] = (block - block.mean()) / np.sqrt(
                block.var() + eps
            )
    return x4.reshape(len(x), -1)


def batch_norm_plain(x, h, w, c, eps=1e-9):
    x4 = x.reshape(len(x), h, w, c).copy()
    for k in range(c):
        ch = x4[..., k]
        x4[..., k] = (ch - ch.mean()) / np.sqrt(ch.var() + eps)
    return x4.reshape(len(x), -1)


def dds_matrix_plain(x, kernel):
    if kernel == "pearson":
        return 1 - np.corrcoef(x)
    if kernel == "euclidean":
        return cdist(x, x, "euclidean")
    if kernel == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1 - unit @ unit.T
    return gram_plain(x, kernel, 0.5)  # their rbf threshold: 0.5


NORMS = {
    "none": lambda x, s: x,
    "centering": lambda x, s: centred(x),
    "znorm": lambda x, s: znorm_plain(x),
    "group": lambda x, s: group_norm_plain(x, *s, groups=2),
    "instance": lambda x, s: group_norm_plain(x, *s, groups=s[2]),
    "layer": lambda x, s: group_norm_plain(x, *s, groups=1),
    "batch": lambda x, s: batch_norm_plain(x, *s),
}


def svcca_plain(x, y, variance):
    """Raghu et al. (2017): SVD-reduce each centred set to the directions keeping `variance`,
    then CCA (scipy.linalg): singular values of Caa^-1/2 Cab Cbb^-1/2; their mean."""

    def reduce(z):
        z = centred(z)
        u, s, vt = scipy.linalg.svd(z, full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.argmax(share >= variance - 1e-12)) + 1
        return z @ vt[:k].T

    a, b = reduce(x), reduce(y)
    inv_sqrt = lambda c: scipy.linalg.inv(scipy.linalg.sqrtm(c).real)  # noqa: E731
    m = inv_sqrt(a.T @ a) @ (a.T @ b) @ inv_sqrt(b.T @ b)
    return np.mean(np.clip(scipy.linalg.svdvals(m), 0, 1))
