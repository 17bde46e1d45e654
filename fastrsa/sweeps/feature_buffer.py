"""One (source, layer)'s features on their way to an RDM: in memory when they fit, else spilled.

    with FeatureBuffer(n, d, np.float32, budget, spill_dir) as buf:
        for start, rows in batches:          # rows: (b, d), in any order, each row once
            buf.add(start, rows)
        rdm = buf.rdm("correlation", backend="auto", memory=budget)   # (n*(n-1)//2,)

In memory (n * d * itemsize <= budget // 2) the RDM is `fastrsa.rdms` of the features, exactly.
Otherwise the features go to a temporary file in `spill_dir`, written with plain file writes in
column-chunk-major layout (each chunk of columns is one contiguous (n, chunk) block), and the RDM
comes from a float64 Gram matrix accumulated one block at a time, read into one reused buffer:
no memory map is held, so the process's memory stays about the Gram matrix plus one block.
The Gram is turned into the RDM by the numpy kernels' ops (fastrsa.kernels.numpy.rdm:
rdm_from_gram, sqdist_from_gram, sqdist_of_pairs, chosen in fastrsa._backend), the same steps
`fastrsa.rdms` takes.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from typing import Any

import numpy as np
from scipy.linalg.blas import dsyrk

from .._backend import rdm_from_gram, sqdist_from_gram, sqdist_of_pairs
from .._checks import check_choice, check_count
from ..rdms import rdms
from ..reference import METRICS

__all__ = [
    "MIN_CHUNK",
    "FeatureBuffer",
    "read_exact",
]

# Fewest columns per spilled block (so that tiny budgets do not make one write per column).
MIN_CHUNK = 16


def _remove(f: Any, path: str) -> None:
    """Close and delete a spill file (idempotent; run by close() and at garbage collection)."""
    try:
        f.close()
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class FeatureBuffer:
    """Features (n, d) of one (source, layer), added in batches of rows, turned into one RDM.

    n: images (rows, at least 3); d: features per image (at least 1); dtype: the features'
    dtype (float16/32/64, integers, bool); budget: bytes of memory this buffer may use;
    spill_dir: where a spill file goes (created if missing); name: the features in errors
    (e.g. "source 'taskA', layer 'block4'"); chunk: columns per spilled block (default: from
    the budget); spill: True / False to force where the features go (default: by the budget).

    In memory when n * d * dtype.itemsize <= budget // 2: holds the (n, d) array in `dtype`.
    Spilled otherwise: the file holds the rows as float32 (float16/float32 features) or float64
    (anything else: integers beyond 2**53 are rounded); memory holds per-row min, max and sum
    and per-column sums (float64, n + d values) while adding, and while computing the RDM the
    (n, n) float64 Gram, one block of `chunk` columns (in the file's dtype and as float64) and
    the result: chunk is sized so that these fit the budget (at least MIN_CHUNK columns).
    """

    def __init__(
        self,
        n: int,
        d: int,
        dtype: Any,
        budget: int,
        spill_dir: str | os.PathLike,
        name: str = "features",
        chunk: int | None = None,
        spill: bool | None = None,
    ):
        for arg, value, least in (("n", n, 3), ("d", d, 1), ("budget", budget, 1)):
            what = {"n": " images (rows) for an RDM", "d": " features", "budget": " bytes"}[arg]
            check_count(value, f"{name}: {arg}", least, what)
        self.n, self.d, self.name = int(n), int(d), name
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "fiub":
            raise TypeError(f"{name}: features must hold real numbers; got dtype {self.dtype}")
        wide = self.dtype.kind != "f" or self.dtype.itemsize > 4
        self.result_dtype = np.dtype(np.float64 if wide else np.float32)
        fits = n * d * self.dtype.itemsize <= budget // 2
        self.spilled = (not fits) if spill is None else bool(spill)
        self.path: str | None = None
        self._filled = np.zeros(n, dtype=bool)
        self._closed = False
        if not self.spilled:
            self._data = np.empty((n, d), dtype=self.dtype)
            return
        self._store = np.dtype(np.float64 if wide else np.float32)
        m = n * (n - 1) // 2
        per_column = n * (self._store.itemsize + 8)  # a block as read, and as centred float64
        room = budget - n * n * 8 - m * self.result_dtype.itemsize
        auto = max(room // per_column, min(d, MIN_CHUNK))
        self.chunk = int(min(d, max(1, chunk if chunk is not None else auto)))
        self._lo = np.zeros(n)
        self._hi = np.zeros(n)
        self._rsum = np.zeros(n)  # each row's sum, times 2**-e of its largest |value|
        self._csum = np.zeros(d)
        try:
            os.makedirs(spill_dir, exist_ok=True)
            fd, self.path = tempfile.mkstemp(prefix=".fastrsa-spill-", suffix=".bin", dir=spill_dir)
        except OSError as err:
            raise ValueError(
                f"spill_dir: cannot create a spill file in {spill_dir} ({err.strerror})"
            ) from None
        self._file = os.fdopen(fd, "r+b", buffering=0)
        self._finalizer = weakref.finalize(self, _remove, self._file, self.path)

    # ---- adding rows ----------------------------------------------------------------------------

    def add(self, start: int, rows: np.ndarray) -> None:
        """Put rows (b, d) at rows start .. start + b - 1 of the features. Spilled: NaN/Inf is
        refused here (ValueError naming the first), and a failed write (a full disk) closes the
        buffer, deleting its file, and raises a ValueError naming the spill file."""
        if self._closed:
            raise ValueError(f"{self.name}: the feature buffer is closed")
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(
                f"{self.name}: rows must be (b, {self.d}) features; got shape {rows.shape}"
            )
        b = len(rows)
        if start < 0 or start + b > self.n:
            raise ValueError(
                f"{self.name}: rows {start}..{start + b - 1} lie outside the {self.n} images"
            )
        if self._filled[start : start + b].any():
            first = start + int(np.argmax(self._filled[start : start + b]))
            raise ValueError(f"{self.name}: row {first} was added twice")
        if not self.spilled:
            self._data[start : start + b] = rows
            self._filled[start : start + b] = True
            return
        x = rows.astype(self._store, copy=False)
        lo, hi = x.min(axis=1).astype(np.float64), x.max(axis=1).astype(np.float64)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            i, j = (int(v) for v in np.argwhere(~np.isfinite(x))[0])
            raise ValueError(
                f"{self.name} holds NaN or Inf (first at index ({start + i}, {j})); remove or "
                "impute them first"
            )
        exps = _exponents(lo, hi)
        rsum = x.sum(axis=1, dtype=np.float64)
        if not np.isfinite(rsum).all():  # float64 rows near the largest float64: scale first
            rsum = np.ldexp(x, -exps[:, None]).sum(axis=1)
        else:
            rsum = np.ldexp(rsum, -exps)
        self._lo[start : start + b], self._hi[start : start + b] = lo, hi
        self._rsum[start : start + b] = rsum
        self._csum += x.sum(axis=0, dtype=np.float64)
        size = self._store.itemsize
        try:
            for c0 in range(0, self.d, self.chunk):
                width = min(self.chunk, self.d - c0)
                piece = np.ascontiguousarray(x[:, c0 : c0 + width])
                self._write(piece, (self.n * c0 + start * width) * size)
        except OSError as err:
            path = self.path
            self.close()
            raise ValueError(
                f"{self.name}: could not write the spill file {path} ({err.strerror}); free "
                "space there or choose another spill_dir"
            ) from None
        self._filled[start : start + b] = True

    def _write(self, piece: np.ndarray, offset: int) -> None:
        view = piece.data.cast("B")
        self._file.seek(offset)
        done = 0
        while done < len(view):
            wrote = self._file.write(view[done:])
            if not wrote:
                raise OSError(28, "no space left on device")
            done += wrote

    def _read(self, c0: int, buffer: np.ndarray) -> np.ndarray:
        """The block of columns c0 .. c0 + width - 1, all n rows, read into `buffer`."""
        width = min(self.chunk, self.d - c0)
        out = buffer[: self.n * width]
        self._file.seek(self.n * c0 * self._store.itemsize)
        if not read_exact(self._file, out):
            raise ValueError(f"{self.name}: the spill file {self.path} is truncated")
        return out.reshape(self.n, width)

    # ---- the RDM --------------------------------------------------------------------------------

    def rdm(
        self, metric: str = "correlation", backend: str = "auto", memory: Any = None
    ) -> np.ndarray:
        """The condensed RDM (n*(n-1)//2,), pairs i < j row-major, float32 for float16/float32
        features and float64 otherwise (as `fastrsa.rdms` gives).

        In memory: `fastrsa.rdms(features, metric, backend, memory=memory)` itself. Spilled
        (backend and memory unused: the numbers are computed here with numpy/BLAS in float64):
        correlation = 1 - G_ij / sqrt(G_ii G_jj) of rows centred by their mean, cosine the same
        uncentred (clipped to [0, 2]); euclidean = sqrt(max(G_ii + G_jj - 2 G_ij, 0)) of
        column-centred rows, with pairs whose squared distance is too small beside G_ii + G_jj
        for the Gram's rounding recomputed directly from their rows in the spill file. Rows are
        scaled by powers of two first (exact) so that the float64 products neither overflow nor
        underflow. Constant rows (correlation), all-zero rows (cosine) are refused as
        `fastrsa.rdms` refuses them."""
        check_choice(metric, METRICS, "metric")
        if self._closed:
            raise ValueError(f"{self.name}: the feature buffer is closed")
        if not self._filled.all():
            missing = np.flatnonzero(~self._filled)
            raise ValueError(
                f"{self.name}: {len(missing)} of {self.n} rows were never added (the first: row "
                f"{int(missing[0])})"
            )
        if not self.spilled:
            return np.asarray(rdms(self._data, metric=metric, backend=backend, memory=memory))
        self._refuse(metric)
        return self._spilled_rdm(metric)

    def _refuse(self, metric: str) -> None:
        """The check fastrsa.rdms makes (same words), from the min and max kept while adding."""
        if metric == "euclidean":
            return
        if metric == "correlation":
            bad = self._lo == self._hi
            problem = "is constant (zero variance, so the correlation is undefined)"
        else:
            bad = (self._lo == 0) & (self._hi == 0)
            problem = "is all zeros (its norm is 0, so the cosine is undefined)"
        if bad.any():
            raise ValueError(
                f"feature row {problem}: {self.name}: row {int(np.argmax(bad))} "
                f"({int(bad.sum())} such in all)"
            )

    def _spilled_rdm(self, metric: str) -> np.ndarray:
        n, d = self.n, self.d
        exps = _exponents(self._lo, self._hi)
        if metric == "euclidean":  # one common power of two: distances scale with it
            top = int(exps.max())
            scale = np.full(n, np.ldexp(1.0, -top))
            offset = self._csum / n  # column means (unscaled)
            if not np.isfinite(offset).all():
                raise ValueError(
                    f"{self.name}: column sums overflow float64 (values near float64's largest); "
                    "rescale the features"
                )
        else:
            scale = np.ldexp(1.0, -exps)
            offset = None
        centre = self._rsum / d if metric == "correlation" else None  # scaled row means
        gram = np.zeros((n, n), order="F")
        buffer = np.empty(n * self.chunk, dtype=self._store)
        work = np.empty(n * self.chunk)
        for c0 in range(0, d, self.chunk):
            block = self._read(c0, buffer)
            y = work[: block.size].reshape(block.shape)
            if offset is not None:
                np.subtract(block, offset[None, c0 : c0 + block.shape[1]], out=y)
                y *= scale[:, None]
            else:
                np.multiply(block, scale[:, None], out=y)
                if centre is not None:
                    y -= centre[:, None]
            gram = dsyrk(1.0, y.T, beta=1.0, c=gram, trans=1, lower=0, overwrite_c=1)
        if metric != "euclidean":
            return rdm_from_gram(gram, out=np.empty(n * (n - 1) // 2, dtype=self.result_dtype))
        d2, where, ii, jj = sqdist_from_gram(gram, d, self.result_dtype == np.float64)
        del gram
        if len(ii):
            d2[where] = self._pair_sqdist(ii, jj, scale[0], buffer, work)
        out = np.ldexp(np.sqrt(d2), top)
        if not np.isfinite(out.astype(self.result_dtype)).all():
            raise ValueError(
                f"{self.name}: distances overflow {self.result_dtype}; pass float64 features"
            )
        return out.astype(self.result_dtype, copy=False)

    def _pair_sqdist(
        self, ii: np.ndarray, jj: np.ndarray, scale: float, buffer: np.ndarray, work: np.ndarray
    ) -> np.ndarray:
        """sum((x_i - x_j) * scale)^2 in float64 for the pairs (ii, jj), directly from the
        spilled rows: one more pass over the blocks, the pairs' differences taking at most
        `work`'s size."""
        acc = np.zeros(len(ii))
        for c0 in range(0, self.d, self.chunk):
            block = self._read(c0, buffer)
            width = block.shape[1]
            step = max(1, len(work) // width)
            for p0 in range(0, len(ii), step):
                part = slice(p0, p0 + step)
                diff = work[: len(ii[part]) * width].reshape(-1, width)
                acc[part] += sqdist_of_pairs(block[ii[part]], block[jj[part]], scale, diff)
        return acc

    # ---- the end --------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the features; a spill file is closed and deleted. Idempotent."""
        self._closed = True
        self._data = None  # type: ignore[assignment]
        if self.spilled:
            self._finalizer()

    def __enter__(self) -> FeatureBuffer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"spilled to {self.path}" if self.spilled else "in memory"
        return f"FeatureBuffer({self.name}: {self.n} x {self.d} {self.dtype}, {where})"


def _exponents(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Each row's binary exponent e of its largest |value| (0 for all-zero rows): rows times
    2**-e lie below 1 in magnitude, so float64 products of up to 2**40 of them stay finite."""
    return np.frexp(np.maximum(np.abs(lo), np.abs(hi)))[1].astype(np.int64)


def read_exact(f: Any, out: np.ndarray) -> bool:
    """Fill the bytes of `out` (C-contiguous) from the file `f` at its position; False when the
    file ends first."""
    view = out.data.cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            return False
        done += got
    return True
