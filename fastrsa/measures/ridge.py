"""Encoding predictivity: cross-validated ridge regression from one representation (the source)
to another, or to a target array such as brain responses (Brain-Score: Schrimpf et al. 2018,
`brainscore` regression + `pearsonr_correlation`, and Yamins et al. PNAS 2014).

Outer cross-validation: the n images are split into `folds` contiguous blocks in image order,
exactly scikit-learn's `KFold(folds, shuffle=False)` (the first n % folds blocks one image longer),
deterministic. In each outer fold, ridge with an unpenalised intercept is fitted on the training
images (features and targets centred by their training means) with the alpha chosen from `alphas`
on the training part, and predicts the held-out block. The held-out predictions of all folds,
concatenated in image order, give per target unit the Pearson r with the truth; the score is
their median (Brain-Score) or mean. Alpha selection matches scikit-learn's
`RidgeCV(alphas, cv=...)` (default alpha_per_target=False: one alpha for all target units):

- inner_folds=None (default): efficient leave-one-out (RidgeCV's cv=None, its GCV mode): the
  alpha with the least mean over training images and units of the squared LOO error
  e_i = (y_i - ŷ_i) / (1 - H_ii), H = 11ᵀ/m + U diag(s²/(s²+α)) Uᵀ.
- inner_folds=k: contiguous k-fold inside the training part (RidgeCV(cv=KFold(k))): the alpha
  with the largest mean over inner folds of R² (uniform average over units; a unit constant in
  an inner test block scores 1 if predicted exactly, else 0, as sklearn's r2_score).
- Ties: losses within 1e-12 (relative) of the best tie, and the first such alpha of the grid
  wins (RidgeCV also keeps the first, but exact ties there fall to rounding: with training
  parts of 2 images every alpha gives the same leave-one-out error).

Computation: per source and fold one decomposition of the centred training features Xc (m, d)
serves every target and alpha: the thin SVD Xc = U S Vᵀ when d <= m (s below max(m, d)·eps·s_max
dropped), else the eigendecomposition Xc Xcᵀ = U S² Uᵀ (eigenvalues below max(m, d)·eps·λ_max,
the Gram's rounding level, dropped) and (X_test - x̄) V = (X_test - x̄) Xcᵀ U S⁻¹. The fitted
training values are U diag(s²/(s²+α)) Uᵀ Yc, the held-out ȳ + (X_test - x̄) V diag(s/(s²+α)) Uᵀ Yc.
`ridge_matrix` with wide sources (d > m) and targets (units >= n), leave-one-out: the LOO loss is
<Q_α, Yc Ycᵀ> with Q_α (n, n) per source and fold (`_loss_ops`): a target enters through its Gram.
float64 throughout; torch inputs are converted with `.detach().cpu().numpy()` (computed on the
CPU). Ridge is not scale-free (α is relative to s²), so a source far from unit scale is rescaled
by 2**-e together with the alphas by 4**-e (the same fit, exactly); targets are rescaled by a
power of two (Pearson r and the choice of alpha do not change).

Conventions: a similarity in [-1, 1], larger = more predictive; asymmetric (row = source,
column = target); the diagonal is not 1 (held-out predictions of a model from itself are not
exact under ridge). A predicted unit whose held-out predictions are all equal gets r = 0 (never
NaN). `predictivity` refuses target units constant over all images (r is undefined);
`ridge_matrix` skips them (a dead unit of a network has nothing to predict) and refuses a
target with none left, and a constant source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays as A

__all__ = ["DEFAULT_ALPHAS", "RidgeFit", "contiguous_folds", "predictivity", "ridge_cv"]
__all__ += ["ridge_matrix"]

# 9 log-spaced alphas, 1e-3 ... 1e5 (one per decade).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(10.0**k for k in range(-3, 6))
SCORES = ("median", "mean")
EPS = float(np.finfo(np.float64).eps)
GRAM_BYTES = 2**28  # the most the (alphas, n, n) LOO operators of one fold may take
TIE = 1e-12  # losses within this relative distance of the best tie (the first alpha wins)


class RidgeFit(NamedTuple):
    """r (units,): Pearson r per target unit; alphas (folds,): the alpha chosen in each outer
    fold (on the caller's scale); predictions (n, units): the held-out predictions."""

    r: np.ndarray
    alphas: np.ndarray
    predictions: np.ndarray


@dataclass(frozen=True)
class Basis:
    """One split of a source: training/held-out indices, U (m, r), s (r,) of the centred training
    features (thin SVD or Gram eigh), z = (X_test - x̄) V (e, r), and the inner splits of the
    training part (indices into it; empty for leave-one-out)."""

    train: np.ndarray
    test: np.ndarray
    u: np.ndarray
    s: np.ndarray
    z: np.ndarray
    inner: tuple[Basis, ...] = ()


@dataclass(frozen=True)
class Source:
    folds: tuple[Basis, ...]
    alpha_scale: float  # alphas are multiplied by this (4**-e when the source was rescaled)


def contiguous_folds(n: int, k: int) -> list[np.ndarray]:
    """The held-out index blocks of KFold(k, shuffle=False) on n items, in order."""
    return np.array_split(np.arange(n), k)


def _splits(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.setdiff1d(np.arange(n), t), t) for t in contiguous_folds(n, k)]


def _basis(x: np.ndarray, train: np.ndarray, test: np.ndarray, inner: int | None) -> Basis:
    xt = x[train]
    mean = xt.mean(axis=0)
    xc = xt - mean
    if xc.shape[1] > xc.shape[0]:  # kernel form: eigh of the (m, m) Gram, (X_test - x̄) Xcᵀ U / s
        lam, u = np.linalg.eigh(xc @ xc.T)
        keep = lam > max(lam[-1], 0.0) * max(xc.shape) * EPS
        u, s = u[:, keep], np.sqrt(lam[keep])
        z = ((x[test] - mean) @ xc.T) @ (u / s)
    else:
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        keep = s > (s[0] if s.size else 0.0) * max(xt.shape) * EPS
        u, s, vt = u[:, keep], s[keep], vt[keep]
        z = (x[test] - mean) @ vt.T
    subs: tuple[Basis, ...] = ()
    if inner is not None:
        subs = tuple(_basis(xt, tr, te, None) for tr, te in _splits(train.size, inner))
    return Basis(train, test, u, s, z, subs)


def _float64(x: Any, name: str) -> np.ndarray:
    arr = A.as_checked(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (images, features); got shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _scaled(x: np.ndarray) -> tuple[np.ndarray, float]:
    """x rescaled by 2**-e when far from unit scale, and 4**-e (else x, 1.0)."""
    out, e = A.rescaled(x, x.min(axis=1), x.max(axis=1), per_matrix=True)
    if e is None:
        return x, 1.0
    with np.errstate(over="ignore", under="ignore"):  # inf or 0: the limits alpha >> or << s²
        return out, float(np.ldexp(1.0, -2 * int(e)))


def check_options(
    n: int, alphas: Sequence[float], folds: int, inner_folds: int | None
) -> np.ndarray:
    """The alphas as a float64 array; ValueError for a bad grid or fold count for n images."""
    grid = np.asarray(alphas, dtype=np.float64).ravel()
    if grid.size == 0 or not (np.isfinite(grid).all() and (grid > 0).all()):
        raise ValueError(f"alphas must be finite and positive; got {list(alphas)!r}")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    if folds > n:
        raise ValueError(f"folds={folds} is more than the {n} images")
    m = n - -(-n // folds)  # the smallest training part
    if m < 2:
        raise ValueError(f"folds={folds} leaves {m} training image(s) of n={n}; need >= 2")
    if inner_folds is not None:
        bad = isinstance(inner_folds, bool) or not isinstance(inner_folds, int | np.integer)
        if bad or inner_folds < 2:
            raise ValueError(f"inner_folds must be None or an integer >= 2; got {inner_folds!r}")
        if m // inner_folds < 2:
            msg = f"inner_folds={inner_folds} leaves inner held-out blocks of < 2 images in a "
            raise ValueError(msg + f"training part of {m} (n={n}, folds={folds}); R² needs 2")
    return grid


def prepare_source(x: np.ndarray, folds: int, inner_folds: int | None, name: str) -> Source:
    """Per-fold SVDs of one (n, d) float64 source (`check_options` already passed)."""
    if not (x.max(axis=0) > x.min(axis=0)).any():
        raise ValueError(f"{name} is constant (zero-variance features): nothing to predict from")
    xs, alpha_scale = _scaled(x)
    bases = tuple(_basis(xs, tr, te, inner_folds) for tr, te in _splits(x.shape[0], folds))
    return Source(bases, alpha_scale)


def prepare_target(y: np.ndarray, name: str, skip_constant: bool) -> np.ndarray:
    """(n, units) float64 target rescaled by a power of two; constant units refused or dropped."""
    varies = y.max(axis=0) > y.min(axis=0)
    if not skip_constant and not varies.all():
        unit = int(np.flatnonzero(~varies)[0])
        raise ValueError(f"{name} unit {unit} is constant over all images: its r is undefined")
    if not varies.any():
        raise ValueError(f"{name} has no unit that varies over the images: nothing to predict")
    return _scaled(y[:, varies] if not varies.all() else y)[0]


def _loo_errors(b: Basis, yc: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Mean squared leave-one-out error over training images and units, per alpha."""
    u, s = b.u, b.s
    m, units = yc.shape
    c = u.T @ yc
    # U spans every centred direction (rank m - 1): the part of Yc outside it is 0
    full = u.shape[1] == m - 1
    r0 = np.zeros_like(yc) if full else yc - u @ c
    u2 = u * u
    s2 = s * s
    gram = c.shape[1] > u.shape[1]  # many units: work with C Cᵀ (r, r) instead of (m, units)
    if gram:
        cct = c @ c.T
        q = np.zeros(m) if full else np.einsum("ij,ij->i", r0, r0)
        cross = np.zeros_like(u) if full else r0 @ c.T
    out = np.empty(alphas.size)
    # 1 - H_ii = (leverage outside U and 1) + sum_k U_ik² α/(s_k²+α): no cancellation
    rest = np.zeros(m) if full else np.maximum(1.0 - 1.0 / m - u2.sum(axis=1), 0.0)
    for k, a in enumerate(alphas):
        g = a / (s2 + a)  # 1 - s²/(s²+α)
        with np.errstate(divide="ignore"):  # 1 - H_ii = 0 only for alpha ~ 0: infinite loss
            w = 1.0 / (rest + u2 @ g) ** 2
        if gram:
            ug = u * g
            t = q + 2.0 * np.einsum("ij,ij->i", ug, cross) + np.einsum("ij,ij->i", ug, ug @ cct)
            out[k] = float(w @ t) / (m * units)
        else:
            resid = r0 + u @ (g[:, None] * c)
            out[k] = float(w @ np.einsum("ij,ij->i", resid, resid)) / (m * units)
    return out


def _loss_ops(b: Basis, alphas: np.ndarray, n: int) -> np.ndarray:
    """(alphas, n*n): Q_α = Mᵀ W M embedded at the training rows and columns (zero elsewhere),
    with M = (Hc - U Ucᵀ) + U diag(α/(s²+α)) Ucᵀ the map from the training targets to their
    residuals (Hc centres, Uc = Hc U) and W = diag(1/(1-H_ii)²): <Q_α, Y Yᵀ> = m·units·LOO loss."""
    u, s2, m = b.u, b.s * b.s, b.u.shape[0]
    uc, u2 = u - u.mean(axis=0), u * u
    full = u.shape[1] == m - 1  # as in _loo_errors: nothing outside U and 1
    perp = 0.0 if full else np.eye(m) - 1.0 / m - u @ uc.T
    rest = np.zeros(m) if full else np.maximum(1.0 - 1.0 / m - u2.sum(axis=1), 0.0)
    out = np.zeros((alphas.size, n, n))
    for k, a in enumerate(alphas):
        g = a / (s2 + a)
        with np.errstate(divide="ignore", invalid="ignore"):  # 1 - H_ii = 0: an infinite loss
            e = np.ascontiguousarray((perp + (u * g) @ uc.T).T / (rest + u2 @ g))
            out[k][np.ix_(b.train, b.train)] = e @ e.T
    return out.reshape(alphas.size, n * n)


def _gram_fits(src: Source, grams: np.ndarray, targets: list, alphas: np.ndarray) -> list:
    """r per unit of each target from its centred (n*n) Gram: one product gives every target's
    LOO losses in a fold; each target's held-out predictions are then one (n, n) map times it."""
    n = targets[0].shape[0]
    grid = np.clip(alphas * src.alpha_scale, 1e-300, 1e300)
    picks = np.stack([[first_best(v) for v in grams @ _loss_ops(b, grid, n).T] for b in src.folds])
    maps: dict[tuple[int, int], np.ndarray] = {}  # (fold, alpha): the (e, m) map, made once
    out = []
    for pick, y in zip(picks.T, targets, strict=True):
        full = np.zeros((n, n))
        for f, (b, k) in enumerate(zip(src.folds, pick, strict=True)):
            if (f, k) not in maps:  # ȳ + z diag(s/(s²+α)) Ucᵀ y from the training rows
                ucs = (b.s / (b.s * b.s + grid[k]))[:, None] * (b.u - b.u.mean(axis=0)).T
                maps[f, k] = b.z @ ucs + 1.0 / b.train.size
            full[np.ix_(b.test, b.train)] = maps[f, k]
        out.append(pearson_columns(full @ y, y))
    return out


def _predict(b: Basis, y: np.ndarray, alphas: np.ndarray) -> list[np.ndarray]:
    """Held-out predictions of `b`'s test block for each alpha, from the training targets."""
    yt = y[b.train]
    mean = yt.mean(axis=0)
    c = b.u.T @ (yt - mean)
    return [mean + b.z @ ((b.s / (b.s * b.s + a))[:, None] * c) for a in alphas]


def _kfold_scores(b: Basis, yt: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Mean over inner folds of R² (uniform over units), per alpha: negated, smaller = better."""
    total = np.zeros(alphas.size)
    for ib in b.inner:
        truth = yt[ib.test]
        ss_tot = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
        for k, pred in enumerate(_predict(ib, yt, alphas)):
            ss_res = ((truth - pred) ** 2).sum(axis=0)
            safe = np.where(ss_tot != 0, ss_tot, 1.0)
            r2 = np.where(ss_tot != 0, 1.0 - ss_res / safe, np.where(ss_res == 0, 1.0, 0.0))
            total[k] += r2.mean()
    return -(total / len(b.inner))


def pearson_columns(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson r of each column pair (float64); 0 where the prediction is constant."""
    pc = pred - pred.mean(axis=0)
    tc = truth - truth.mean(axis=0)
    num = np.einsum("ij,ij->j", pc, tc)
    den = np.sqrt(np.einsum("ij,ij->j", pc, pc) * np.einsum("ij,ij->j", tc, tc))
    r = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(r, -1.0, 1.0)


def first_best(loss: np.ndarray) -> int:
    """Index of the smallest loss, the first of those within TIE (relative) of it: rounding
    must not pick among alphas that tie exactly in exact arithmetic."""
    loss = np.where(np.isnan(loss), np.inf, loss)
    low = loss.min()
    if not np.isfinite(low):
        return 0
    return int(np.flatnonzero(loss <= low + TIE * abs(low))[0])


def fit(source: Source, y: np.ndarray, alphas: np.ndarray) -> RidgeFit:
    """Cross-validated ridge of a prepared source onto a prepared (n, units) target."""
    grid = np.clip(alphas * source.alpha_scale, 1e-300, 1e300)  # a rescaled limit stays finite
    pred = np.empty_like(y)
    chosen = np.empty(len(source.folds))
    for i, b in enumerate(source.folds):
        yt = y[b.train]
        if b.inner:
            loss = _kfold_scores(b, yt, grid)
        else:
            loss = _loo_errors(b, yt - yt.mean(axis=0), grid)
        best = first_best(loss)
        chosen[i] = alphas[best]
        pred[b.test] = _predict(b, y, grid[best : best + 1])[0]
    return RidgeFit(pearson_columns(pred, y), chosen, pred)


def ridge_cv(
    source: Any,
    target: Any,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    inner_folds: int | None = None,
    name: str = "source",
    target_name: str = "target",
) -> RidgeFit:
    """Cross-validated ridge from `source` (n, d) to `target` (n, units), numpy or torch: r per
    unit, the alpha of each outer fold and the held-out predictions (see the module docstring).
    A target unit constant over all images is refused."""
    x = _float64(source, name)
    y = _float64(target, target_name)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{target_name} has {y.shape[0]} images but {name} has {x.shape[0]}")
    grid = check_options(x.shape[0], alphas, folds, inner_folds)
    yp = prepare_target(y, target_name, skip_constant=False)
    result = fit(prepare_source(x, folds, inner_folds, name), yp, grid)
    scale = np.abs(y).max() / np.abs(yp).max()  # a power of two: back to the caller's scale
    return result._replace(predictions=result.predictions * scale)


def predictivity(
    source: Any,
    target: Any,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    inner_folds: int | None = None,
    name: str = "source",
    target_name: str = "target",
) -> np.ndarray:
    """(units,) float64 Pearson r per target unit of the cross-validated ridge predictions of
    `target` (n, units; e.g. brain responses) from `source` (n, d) features (`ridge_cv`)."""
    return ridge_cv(
        source,
        target,
        alphas=alphas,
        folds=folds,
        inner_folds=inner_folds,
        name=name,
        target_name=target_name,
    ).r


def ridge_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    inner_folds: int | None = None,
    score: str = "median",
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """Encoding predictivity of every model of `models_b` (or of `models_a`; columns, targets)
    from every model of `models_a` (rows, sources): the median (or mean) over the target's
    non-constant units of the cross-validated Pearson r. (Ba, Bb) float64, not symmetric, the
    diagonal not 1. One set of per-fold SVDs per source serves every target and alpha."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}; got {score!r}")
    summary = np.median if score == "median" else np.mean
    xs = [_float64(x, nm) for x, nm in zip(models_a, names_a, strict=True)]
    ys = xs
    if models_b is not None:
        ys = [_float64(y, nm) for y, nm in zip(models_b, names_b, strict=True)]
    n = xs[0].shape[0]
    grid = check_options(n, alphas, folds, inner_folds)
    targets = [
        prepare_target(y, nm, skip_constant=True)
        for y, nm in zip(ys, names_a if models_b is None else names_b, strict=True)
    ]
    out = np.empty((len(xs), len(targets)))
    grams = None  # the Gram route: LOO, several targets all wide, operators within GRAM_BYTES
    wide = len(targets) > 1 and all(y.shape[1] >= n for y in targets)
    if inner_folds is None and wide and 8 * grid.size * n * n <= GRAM_BYTES:
        grams = np.stack([((c := y - y.mean(axis=0)) @ c.T).ravel() for y in targets])
    for i, (x, nm) in enumerate(zip(xs, names_a, strict=True)):
        src = prepare_source(x, folds, inner_folds, nm)
        if grams is not None and x.shape[1] > n - -(-n // folds):  # d > every training part
            out[i] = [summary(r) for r in _gram_fits(src, grams, targets, grid)]
        else:
            out[i] = [summary(fit(src, y, grid).r) for y in targets]
    return out
