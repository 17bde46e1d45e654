"""Confidence of the transfer evaluation and ranking (issue 15): evaluate_transfer(...,
samples=...) percentile intervals, `fastrsa evaluate --bootstrap K --seed S`, plot_ranking and
`fastrsa rank --plot`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from fastrsa import rdms
from fastrsa.cli import main
from fastrsa.plots import _ranking_figure, plot_ranking
from fastrsa.stats import bootstrap
from fastrsa.support import RankingConfidence
from fastrsa.taxonomy import (
    TRANSFER_FIGURES,
    Ranking,
    evaluate_transfer,
    rank_sources,
    taxonomy,
)

LABELS = [f"t{i}" for i in range(6)]
OLD_KEYS = ["n_targets", "top1", "top3", "top5", "mean_pearson", "mean_spearman", "per_target"]
PNG = b"\x89PNG\r\n\x1a\n"


def task_rdms(rng, n=14, d=5) -> np.ndarray:
    """(6, n(n-1)/2) condensed RDMs of 6 tasks sharing a latent, noisier with the index."""
    latent = rng.standard_normal((n, d))
    feats = [latent + (0.4 + 0.25 * i) * rng.standard_normal((n, d)) for i in range(6)]
    return np.stack([np.asarray(rdms(f)) for f in feats])


def affinities_of(sim: np.ndarray, rng, noise=0.05) -> dict[tuple[str, str], float]:
    """Affinities source -> target = the similarity plus noise: RSA predicts them well."""
    return {
        (s, t): float(sim[i, j] + noise * rng.standard_normal())
        for i, s in enumerate(LABELS)
        for j, t in enumerate(LABELS)
        if s != t
    }


def figures(ev) -> dict[str, float]:
    return {key: getattr(ev, key) for key in TRANSFER_FIGURES}


@pytest.fixture
def case(rng):
    rows = task_rdms(rng)
    sim = taxonomy(rows, LABELS).similarity
    samples = bootstrap(rows, n_boot=24, seed=5).samples
    return rows, sim, affinities_of(sim, rng), samples


# ---- evaluate_transfer(..., samples) -------------------------------------------------------


def test_intervals_are_quantiles_of_the_per_sample_evaluations(case):
    _, sim, aff, samples = case
    ev = evaluate_transfer(sim, LABELS, aff, samples=samples, level=0.9)
    # independently: the point evaluation of each sample, then numpy's quantiles
    each = [figures(evaluate_transfer(s, LABELS, aff)) for s in samples]
    for key in TRANSFER_FIGURES:
        values = np.array([f[key] for f in each], dtype=np.float64)
        want = np.quantile(values, [0.05, 0.95])
        np.testing.assert_allclose(ev.intervals[key], want, rtol=1e-12, atol=0)
    assert ev.n_boot == 24 and ev.level == 0.9 and ev.seed is None
    # the point estimate is the evaluation without samples
    plain = evaluate_transfer(sim, LABELS, aff)
    assert figures(ev) == figures(plain) and ev.per_target == plain.per_target
    assert plain.n_boot == 0 and plain.intervals is None


def test_intervals_hold_sensible_values(case):
    _, sim, aff, samples = case
    ev = evaluate_transfer(sim, LABELS, aff, samples=samples)
    assert set(ev.intervals) == set(TRANSFER_FIGURES)
    for key, (lo, hi) in ev.intervals.items():
        assert lo <= hi, key
        if key.startswith("top"):
            assert 0 <= lo and hi <= ev.n_targets
        else:
            assert -1.0 <= lo and hi <= 1.0
    assert ev.intervals["top1"][0] <= ev.intervals["top3"][0] <= ev.intervals["top5"][0]
    # affinities = similarity + small noise: the resampled correlations lean positive
    assert ev.intervals["mean_spearman"][1] > 0 and ev.intervals["mean_pearson"][1] > 0
    # a wider level gives an interval that contains the narrower one
    narrow = evaluate_transfer(sim, LABELS, aff, samples=samples, level=0.5).intervals
    for key in TRANSFER_FIGURES:
        assert ev.intervals[key][0] <= narrow[key][0] <= narrow[key][1] <= ev.intervals[key][1]


def test_intervals_on_constructed_samples():
    rng = np.random.default_rng(0)
    sim = np.eye(6)
    upper = np.triu_indices(6, 1)
    sim[upper] = rng.uniform(0.1, 0.9, len(upper[0]))
    sim = np.maximum(sim, sim.T)
    aff = {(s, t): sim[i, j] for i, s in enumerate(LABELS) for j, t in enumerate(LABELS) if i != j}
    # the same matrix K times: a zero-width interval at the point estimate
    ev = evaluate_transfer(sim, LABELS, aff, samples=np.stack([sim] * 3))
    assert ev.intervals["top1"] == (6.0, 6.0)
    assert ev.intervals["mean_spearman"] == pytest.approx((1.0, 1.0))
    # the matrix and its reverse (every target's order flipped): Spearman 1 and -1, top-1 6 and
    # 0; the 0.25 and 0.75 quantiles (linear) of two values a < b are a + (b - a) / 4 and 3/4
    flipped = 1.0 - sim + np.eye(6)
    ev = evaluate_transfer(sim, LABELS, aff, samples=np.stack([sim, flipped]), level=0.5)
    assert ev.intervals["mean_spearman"] == pytest.approx((-0.5, 0.5))
    assert ev.intervals["mean_pearson"] == pytest.approx((-0.5, 0.5))
    assert ev.intervals["top1"] == (1.5, 4.5)
    assert ev.intervals["top3"] == (1.5, 4.5)  # the RSA-best is the 5th of 5 by affinity
    assert ev.intervals["top5"] == (6.0, 6.0)  # 5 candidates: every target is a top-5 hit


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, float("nan")])
def test_level_out_of_range(case, level):
    _, sim, aff, samples = case
    with pytest.raises(ValueError, match="level must lie in"):
        evaluate_transfer(sim, LABELS, aff, samples=samples, level=level)


@pytest.mark.parametrize("level", [True, "0.9", None])
def test_level_not_a_number(case, level):
    _, sim, aff, samples = case
    with pytest.raises(TypeError, match="level must be a number"):
        evaluate_transfer(sim, LABELS, aff, samples=samples, level=level)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda s: s[0], ValueError, r"samples must be \(K, 6, 6\).*got shape \(6, 6\)"),
        (lambda s: s[:, :, :-1], ValueError, r"samples must be \(K, 6, 6\)"),
        (lambda s: s[:, :-1, :-1], ValueError, r"got shape \(24, 5, 5\)"),
        (lambda s: s[:0], ValueError, "samples holds no resamples"),
        (lambda s: np.where(np.arange(6) == 2, np.nan, s), ValueError, r"samples\[0, 0, 2\]"),
        (lambda s: s.astype(complex), TypeError, "samples must be real"),
        (lambda s: s.astype(str), TypeError, "samples must hold numbers"),
    ],
)
def test_bad_samples(case, make, error, match):
    _, sim, aff, samples = case
    with pytest.raises(error, match=match):
        evaluate_transfer(sim, LABELS, aff, samples=make(samples))


def test_sample_with_undefined_correlation_names_it(case):
    _, sim, aff, samples = case
    bad = samples.copy()
    others = [i for i in range(6) if i != 3]
    for k in (2, 5):
        bad[k, 3, others] = bad[k, others, 3] = 0.25  # target t3: all candidates equally similar
    with pytest.raises(
        ValueError,
        match=r"samples\[2\]: every candidate is equally similar to "
        r"target 't3'.*\(and in 1 more\)",
    ):
        evaluate_transfer(sim, LABELS, aff, samples=bad)
    # the point estimate keeps its own message, without a sample index
    with pytest.raises(ValueError, match=r"^similarity: every candidate .* target 't3'"):
        evaluate_transfer(bad[2], LABELS, aff)


def test_json_round_trip(case):
    _, sim, aff, samples = case
    ev = evaluate_transfer(sim, LABELS, aff, samples=samples)
    ev.seed = 5
    saved = json.loads(json.dumps(ev.to_json(), allow_nan=False))
    assert list(saved) == [*OLD_KEYS, "bootstrap"]
    assert saved["bootstrap"]["n_boot"] == 24 and saved["bootstrap"]["seed"] == 5
    assert saved["bootstrap"]["level"] == 0.95
    for key in TRANSFER_FIGURES:
        assert saved["bootstrap"]["intervals"][key] == list(ev.intervals[key])
        assert saved[key] == getattr(ev, key)


def test_json_without_samples_is_unchanged(case):
    _, sim, aff, _ = case
    ev = evaluate_transfer(sim, LABELS, aff)
    out = ev.to_json()
    assert list(out) == OLD_KEYS
    assert out["per_target"] == ev.per_target and out["top1"] == ev.top1
    json.dumps(out, allow_nan=False)


# ---- fastrsa evaluate --bootstrap K --seed S -------------------------------------------------


@pytest.fixture
def files(tmp_path, rng):
    rows = task_rdms(rng)
    np.savez(tmp_path / "rdms.npz", **dict(zip(LABELS, rows, strict=True)))
    sim = taxonomy(rows, LABELS).similarity
    aff = affinities_of(sim, rng)
    (tmp_path / "aff.json").write_text(json.dumps({f"{s}__{t}": v for (s, t), v in aff.items()}))
    return tmp_path, rows, sim, aff


def evaluate_argv(tmp_path, *extra) -> list[str]:
    return [
        "evaluate",
        "--rdms",
        str(tmp_path / "rdms.npz"),
        "--affinities",
        str(tmp_path / "aff.json"),
        *extra,
    ]


def test_cli_evaluate_bootstrap(files, capsys):
    tmp_path, rows, sim, aff = files
    out = tmp_path / "ev.json"
    assert (
        main(evaluate_argv(tmp_path, "--bootstrap", "20", "--seed", "4", "--json", str(out))) == 0
    )
    printed = capsys.readouterr().out
    assert "bootstrap: 20 resamples of the images, seed 4; 95% intervals: top-1 [" in printed
    saved = json.loads(out.read_text())
    want = evaluate_transfer(sim, LABELS, aff, samples=bootstrap(rows, n_boot=20, seed=4).samples)
    assert saved["bootstrap"]["n_boot"] == 20 and saved["bootstrap"]["seed"] == 4
    assert saved["bootstrap"]["level"] == 0.95
    for key in TRANSFER_FIGURES:
        np.testing.assert_allclose(saved["bootstrap"]["intervals"][key], want.intervals[key])
        assert saved[key] == pytest.approx(getattr(want, key))


def test_cli_evaluate_draws_and_records_a_seed(files, capsys):
    tmp_path, *_ = files
    first, again = tmp_path / "a.json", tmp_path / "b.json"
    assert main(evaluate_argv(tmp_path, "--bootstrap", "8", "--json", str(first))) == 0
    seed = json.loads(first.read_text())["bootstrap"]["seed"]
    assert isinstance(seed, int) and f"seed {seed};" in capsys.readouterr().out
    argv = evaluate_argv(tmp_path, "--bootstrap", "8", "--seed", str(seed), "--json", str(again))
    assert main(argv) == 0
    assert json.loads(again.read_text()) == json.loads(first.read_text())


def test_cli_evaluate_without_bootstrap_keeps_its_json(files, capsys):
    tmp_path, _, sim, aff = files
    out = tmp_path / "ev.json"
    assert main(evaluate_argv(tmp_path, "--json", str(out))) == 0
    assert "bootstrap" not in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert list(saved) == OLD_KEYS
    assert saved["top1"] == evaluate_transfer(sim, LABELS, aff).top1


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--bootstrap", "5", "--store", "nowhere"], "--bootstrap: resamples images of RDM"),
        (["--seed", "3"], "--seed: seeds --bootstrap; there is no --bootstrap"),
        (["--bootstrap", "-1"], "--bootstrap must be >= 0"),
        (["--bootstrap", "5", "--seed", "-2"], "--seed must be >= 0"),
    ],
)
def test_cli_evaluate_bootstrap_refusals(files, capsys, extra, match):
    tmp_path, *_ = files
    argv = evaluate_argv(tmp_path, *extra)
    if "--store" in extra:  # --store replaces --rdms (they are exclusive)
        argv = argv[:1] + argv[3:]
    assert main(argv) == 2
    assert match in capsys.readouterr().err


# ---- plot_ranking and fastrsa rank --plot -----------------------------------------------------


def made_ranking() -> Ranking:
    """3 sources; the interval of "b" lies entirely above its score (a percentile interval need
    not contain it): its lower error bar is clipped at 0."""
    ranking = Ranking(["a", "b", "c"], np.array([0.8, 0.5, -0.2]))
    ranking.confidence = RankingConfidence(
        labels=["a", "b", "c"],
        top1=np.array([0.7, 0.3, 0.0]),
        top_k={1: np.array([0.7, 0.3, 0.0])},
        interval=np.array([[0.6, 0.9], [0.55, 0.7], [-0.4, 0.1]]),
        level=0.9,
        n_boot=10,
    )
    ranking.n_boot = 10
    return ranking


def bar_container(ax) -> BarContainer:
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    return bars


def test_ranking_figure_draws_scores_intervals_and_top1():
    ranking = made_ranking()
    fig = _ranking_figure(Figure, ranking, "title")
    ax = fig.axes[0]
    bars = bar_container(ax)
    assert [p.get_width() for p in bars.patches] == pytest.approx([0.8, 0.5, -0.2])
    segments = bars.errorbar.lines[2][0].get_segments()
    ends = [(seg[0, 0], seg[1, 0]) for seg in segments]
    assert ends == [
        pytest.approx((0.6, 0.9)),
        pytest.approx((0.5, 0.7)),
        pytest.approx((-0.4, 0.1)),
    ]
    assert [t.get_text() for t in ax.texts] == ["P(top-1) 0.70", "P(top-1) 0.30", "P(top-1) 0.00"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # the best source at the top
    # confidence rows in another order are matched by label
    conf = ranking.confidence
    order = [2, 0, 1]
    ranking.confidence = RankingConfidence(
        [conf.labels[i] for i in order], conf.top1[order], {}, conf.interval[order], 0.9, 10
    )
    ax = _ranking_figure(Figure, ranking, None).axes[0]
    assert [t.get_text() for t in ax.texts] == ["P(top-1) 0.70", "P(top-1) 0.30", "P(top-1) 0.00"]


def test_ranking_figure_without_confidence():
    ranking = Ranking(["a", "b"], np.array([0.4, 0.1]))
    ax = _ranking_figure(Figure, ranking, None).axes[0]
    bars = bar_container(ax)
    assert [p.get_width() for p in bars.patches] == pytest.approx([0.4, 0.1])
    assert bars.errorbar is None and not ax.texts


@pytest.mark.parametrize("confidence", [True, False])
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_ranking_writes_files(tmp_path, rng, confidence, suffix):
    rows = task_rdms(rng)
    ranking = rank_sources(rows[0], rows[1:], LABELS[1:], n_boot=10 if confidence else 0, seed=1)
    assert (ranking.confidence is not None) == confidence
    path = plot_ranking(ranking, tmp_path / f"rank{suffix}", title="target t0")
    assert path == tmp_path / f"rank{suffix}"
    data = path.read_bytes()
    assert data.startswith(PNG) if suffix == ".png" else b"<svg" in data[:2000]
    assert len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_plot_ranking_refusals(tmp_path):
    ranking = made_ranking()
    with pytest.raises(ValueError, match=r"plot: .*rank\.xyz must end in one of .*png"):
        plot_ranking(ranking, tmp_path / "rank.xyz")
    ranking.confidence.labels = ["a", "b", "z"]
    with pytest.raises(ValueError, match="confidence is for sources"):
        plot_ranking(ranking, tmp_path / "rank.png")
    with pytest.raises(ValueError, match="holds no sources"):
        plot_ranking(Ranking([], np.zeros(0)), tmp_path / "rank.png")
    with pytest.raises(ValueError, match="NaN or Inf"):
        plot_ranking(Ranking(["a"], np.array([np.nan])), tmp_path / "rank.png")
    assert not any(tmp_path.iterdir())


def test_cli_rank_plot(tmp_path, rng, capsys):
    rows = task_rdms(rng)
    np.save(tmp_path / "target.npy", rows[0])
    np.savez(tmp_path / "sources.npz", **dict(zip(LABELS[1:], rows[1:], strict=True)))
    argv = ["rank", "--target", str(tmp_path / "target.npy"), "--sources"]
    argv += [str(tmp_path / "sources.npz"), "--bootstrap", "10", "--seed", "1"]
    assert main([*argv, "--plot", str(tmp_path / "rank.png")]) == 0
    assert f"wrote {tmp_path / 'rank.png'}" in capsys.readouterr().out
    assert (tmp_path / "rank.png").read_bytes().startswith(PNG)
    # refused before any work: an unknown format, a folder where the file goes
    assert main([*argv, "--plot", str(tmp_path / "rank.xyz")]) == 2
    assert "--plot: " in capsys.readouterr().err and not (tmp_path / "rank.xyz").exists()
    (tmp_path / "dir.png").mkdir()
    assert main([*argv, "--plot", str(tmp_path / "dir.png")]) == 2
    assert "--plot: " in capsys.readouterr().err
