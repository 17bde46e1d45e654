"""The statistics flags of the `fastrsa` command: `compare --permutations K`, `taxonomy
--bootstrap K`, `rank --bootstrap K` (and `rank --json`), with `--seed S`: the numbers equal the
API's with the same seed, the seed is recorded (drawn when not given) and replays the run, a seed
that would seed nothing is refused alike by every command, bad counts are refused naming the
flag, and files are written before stdout (a reader closing the pipe loses none)."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import fastrsa.cli
import fastrsa.stats
from fastrsa import compare, io, rdms
from fastrsa.cli import main
from fastrsa.stats import permutation_test
from fastrsa.support import RankingConfidence, ranking_confidence
from fastrsa.taxonomy import rank_sources, taxonomy

# ---- compare --permutations ------------------------------------------------------------------


def test_compare_permutations_json(tmp_path, rng, capsys):
    rdms_ = rng.random((3, 45))
    np.save(tmp_path / "r.npy", rdms_)
    out = tmp_path / "sim.json"
    argv = ["compare", str(tmp_path / "r.npy"), "--permutations", "99", "--seed", "7"]
    assert main([*argv, "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["permutations"] == 99 and saved["seed"] == 7
    want = permutation_test(rdms_, n_perm=99, seed=7)
    np.testing.assert_allclose(np.array(saved["p_values"]), want.p, atol=0)
    assert saved["similarity"] == np.asarray(compare(rdms_)).tolist()
    assert "p-values (99 permutations of the images, seed 7)" in capsys.readouterr().out


def _counting_compare(monkeypatch) -> list[int]:
    """Count the calls of compare made by the command and by permutation_test."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return compare(*args, **kwargs)

    monkeypatch.setattr(fastrsa.cli.compare, "compare", counted)
    monkeypatch.setattr(fastrsa.stats.permutation, "compare", counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_other", [False, True])
def test_compare_permutations_computes_the_similarity_once(
    tmp_path, rng, monkeypatch, capsys, dtype, with_other
):
    """The observed similarity of permutation_test is the matrix: one compare, and the same
    printed table and saved .npz/.json (values and dtype) as without --permutations."""
    a, b = rng.random((3, 45)).astype(dtype), rng.random((2, 45)).astype(dtype)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    argv = ["compare", str(tmp_path / "a.npy")]
    argv += ["--with", str(tmp_path / "b.npy")] if with_other else []
    plain, tested = {}, {}
    for suffix in ("npz", "json"):
        assert main([*argv, "--out", str(tmp_path / f"plain.{suffix}")]) == 0
        plain[suffix] = capsys.readouterr().out
        calls = _counting_compare(monkeypatch)
        extra = ["--permutations", "19", "--seed", "2", "--out", str(tmp_path / f"p.{suffix}")]
        assert main([*argv, *extra]) == 0
        assert len(calls) == 1
        tested[suffix] = capsys.readouterr().out
        monkeypatch.undo()
    want = np.asarray(compare(a, b if with_other else None))
    saved = io.load_arrays(tmp_path / "p.npz")
    assert saved["similarity"].dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(saved["similarity"], want)
    unchanged = io.load_arrays(tmp_path / "plain.npz")["similarity"]
    assert unchanged.dtype == saved["similarity"].dtype
    np.testing.assert_array_equal(saved["similarity"], unchanged)
    assert int(saved["seed"]) == 2 and int(saved["permutations"]) == 19
    got = json.loads((tmp_path / "p.json").read_text())["similarity"]
    assert got == json.loads((tmp_path / "plain.json").read_text())["similarity"]
    # the similarity table printed first is the same as without --permutations
    assert tested["json"].startswith(plain["json"].split("wrote")[0])


def test_compare_permutations_draws_records_and_replays_a_seed(tmp_path, rng, monkeypatch, capsys):
    np.save(tmp_path / "r.npy", rng.random((3, 28)))
    first, again = tmp_path / "a.json", tmp_path / "b.json"
    argv = ["compare", str(tmp_path / "r.npy"), "--permutations", "49"]
    drawn = []

    def draw() -> int:  # fastrsa._checks.draw_seed, where the compare command looks it up
        drawn.append(123456789)
        return 123456789

    monkeypatch.setattr(fastrsa.cli.compare, "draw_seed", draw)
    assert main([*argv, "--out", str(first)]) == 0
    assert drawn == [123456789]
    saved = json.loads(first.read_text())
    assert saved["seed"] == 123456789
    assert "seed 123456789)" in capsys.readouterr().out
    assert main([*argv, "--seed", str(saved["seed"]), "--out", str(again)]) == 0
    assert json.loads(again.read_text()) == saved


# ---- refusals: --seed without its flag, bad counts -------------------------------------------


@pytest.fixture
def inputs(tmp_path, rng):
    """An RDM file of 4 models, a target and 3 sources of the same images, an affinity table."""
    x = rng.standard_normal((5, 12, 6))
    rows = np.stack([np.asarray(rdms(x[i])) for i in range(5)])
    np.savez(tmp_path / "r.npz", **{f"m{i}": rows[i] for i in range(4)})
    np.save(tmp_path / "target.npy", rows[4])
    np.savez(tmp_path / "sources.npz", a=rows[0], b=rows[1], c=rows[2])
    aff = {f"m{s}__m{t}": float(rng.random()) for s in range(4) for t in range(4) if s != t}
    (tmp_path / "aff.json").write_text(json.dumps(aff))
    return tmp_path, rows


def _argv(command: str, d) -> list[str]:
    return {
        "compare": ["compare", f"{d}/r.npz"],
        "taxonomy": ["taxonomy", "--rdms", f"{d}/r.npz", "--out", f"{d}/tax"],
        "rank": ["rank", "--target", f"{d}/target.npy", "--sources", f"{d}/sources.npz"],
        "evaluate": ["evaluate", "--rdms", f"{d}/r.npz", "--affinities", f"{d}/aff.json"],
    }[command]


@pytest.mark.parametrize(
    "command,extra,flag",
    [
        ("compare", [], "--permutations"),
        ("taxonomy", [], "--bootstrap"),
        ("taxonomy", ["--bootstrap", "0"], "--bootstrap"),
        ("rank", [], "--bootstrap"),
        ("rank", ["--bootstrap", "0"], "--bootstrap"),
        ("evaluate", [], "--bootstrap"),
    ],
)
def test_seed_without_its_flag_is_refused_by_every_command(inputs, capsys, command, extra, flag):
    d, _ = inputs
    assert main([*_argv(command, d), *extra, "--seed", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"fastrsa {command}: error: --seed: seeds {flag}; there is no {flag} "
        f"(give {flag} K with --seed)\n"
    )
    assert not (d / "tax").exists()  # refused before any work


@pytest.mark.parametrize(
    "command,extra,message",
    [
        ("taxonomy", ["--bootstrap", "-1"], "--bootstrap must be >= 0 (0: no bootstrap); got -1"),
        ("rank", ["--bootstrap", "-3"], "--bootstrap must be >= 0 (0: no bootstrap); got -3"),
        ("evaluate", ["--bootstrap", "-1"], "--bootstrap must be >= 0 (0: no bootstrap); got -1"),
        ("compare", ["--permutations", "0"], "--permutations must be >= 1; got 0"),
        ("compare", ["--permutations", "-5"], "--permutations must be >= 1; got -5"),
        ("taxonomy", ["--bootstrap", "5", "--seed", "-1"], "--seed must be >= 0; got -1"),
        ("rank", ["--bootstrap", "5", "--seed", "-1"], "--seed must be >= 0; got -1"),
        ("compare", ["--permutations", "5", "--seed", "-1"], "--seed must be >= 0; got -1"),
    ],
)
def test_bad_counts_and_seeds_name_the_flag(inputs, capsys, command, extra, message):
    d, _ = inputs
    assert main([*_argv(command, d), *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"fastrsa {command}: error: {message}\n"
    assert "n_boot" not in err and "n_perm" not in err


def test_permutations_refuse_stores_before_any_work(inputs, capsys):
    d, _ = inputs
    assert main(["compare", "--store", f"{d}/nowhere", "--permutations", "9"]) == 2
    assert "--permutations: reads RDM files" in capsys.readouterr().err


# ---- taxonomy --bootstrap --------------------------------------------------------------------


def test_taxonomy_bootstrap_support_in_json(tmp_path, rng, capsys):
    x = rng.standard_normal((5, 12, 6))
    np.savez(tmp_path / "r.npz", **{f"m{i}": np.asarray(rdms(x[i])) for i in range(5)})
    argv = ["taxonomy", "--rdms", str(tmp_path / "r.npz"), "--clusters", "2"]
    argv += ["--bootstrap", "20", "--seed", "3", "--out", str(tmp_path / "tax")]
    assert main(argv) == 0
    assert "bootstrap support (20 resamples of the images, seed 3)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "tax" / "taxonomy.json").read_text())
    assert saved["bootstrap"]["n_boot"] == 20 and saved["bootstrap"]["seed"] == 3
    want = taxonomy(
        np.stack([np.asarray(rdms(x[i])) for i in range(5)]),
        [f"m{i}" for i in range(5)],
        n_clusters=2,
        n_boot=20,
        seed=3,
    )
    np.testing.assert_allclose(saved["bootstrap"]["support"], want.support, atol=0)


# ---- rank --bootstrap, rank --json -----------------------------------------------------------


def test_rank_bootstrap_prints_confidence(tmp_path, rng, capsys):
    rows = rng.random((4, 45))
    np.save(tmp_path / "target.npy", rows[0])
    np.savez(tmp_path / "sources.npz", a=rows[1], b=rows[2], c=rows[3])
    argv = ["rank", "--target", str(tmp_path / "target.npy"), "--sources"]
    argv += [str(tmp_path / "sources.npz"), "--bootstrap", "30", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bootstrap: 30 resamples of the images, seed 1" in out and out.count("P(top-1)") >= 3


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_rank_json_equals_the_ranking(inputs, capsys, method):
    d, rows = inputs
    out = d / "rank.json"
    argv = [*_argv("rank", d), "--method", method, "--bootstrap", "30", "--seed", "5"]
    assert main([*argv, "--json", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    want = rank_sources(rows[4], rows[:3], ["a", "b", "c"], method=method, n_boot=30, seed=5)
    saved = json.loads(out.read_text())
    assert list(saved) == ["method", "labels", "scores", "bootstrap"]
    assert saved["method"] == method
    assert saved["labels"] == want.labels
    assert saved["scores"] == want.scores.tolist()
    assert saved["bootstrap"] == {
        "n_boot": 30,
        "seed": 5,
        "level": 0.95,
        "sources": want.confidence.per_source(),
    }
    assert [row["label"] for row in saved["bootstrap"]["sources"]] == want.labels


def test_rank_json_without_bootstrap(inputs, capsys):
    d, rows = inputs
    out = d / "rank.json"
    assert main([*_argv("rank", d), "--json", str(out)]) == 0
    want = rank_sources(rows[4], rows[:3], ["a", "b", "c"])
    assert json.loads(out.read_text()) == {
        "method": "spearman",
        "labels": want.labels,
        "scores": want.scores.tolist(),
    }


def test_rank_json_records_a_drawn_seed_that_replays_the_run(inputs, capsys):
    d, _ = inputs
    first, again = d / "a.json", d / "b.json"
    assert main([*_argv("rank", d), "--bootstrap", "12", "--json", str(first)]) == 0
    saved = json.loads(first.read_text())
    seed = saved["bootstrap"]["seed"]
    assert isinstance(seed, int) and seed >= 0
    assert f"seed {seed};" in capsys.readouterr().out
    argv = [*_argv("rank", d), "--bootstrap", "12", "--seed", str(seed), "--json", str(again)]
    assert main(argv) == 0
    assert json.loads(again.read_text()) == saved


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_rank_json_path_is_checked_before_any_work(inputs, capsys, where):
    d, _ = inputs
    (d / "folder").mkdir()
    (d / "file").write_text("")
    path = d / "folder" if where == "folder" else d / "file" / "rank.json"
    # --sources does not exist: the bad --json is found before any file is read
    argv = ["rank", "--target", f"{d}/target.npy", "--sources", f"{d}/missing.npz"]
    assert main([*argv, "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastrsa rank: error: --json: ") and str(path) in err


def test_rank_json_of_a_sources_store(inputs, capsys):
    pytest.importorskip("zarr")
    d, rows = inputs
    store = d / "store"
    assert (
        main(["sweep", "--store", str(store), "--rdms", f"{d}/sources.npz", "--no-progress"]) == 0
    )
    capsys.readouterr()
    out = d / "rank.json"
    argv = ["rank", "--target", f"{d}/target.npy", "--sources-store", str(store)]
    assert main([*argv, "--json", str(out)]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()[:-1]]
    saved = json.loads(out.read_text())
    assert list(saved) == ["method", "labels", "scores"]
    assert saved["labels"] == [label for _, label, _ in printed]
    np.testing.assert_allclose(saved["scores"], [float(s) for *_, s in printed], atol=5e-5)
    want = rank_sources(rows[4], rows[:3], ["a", "b", "c"])
    assert saved["labels"] == want.labels
    np.testing.assert_allclose(saved["scores"], want.scores, atol=1e-10)
    # --target-label: that source of the store is the target, left out
    assert (
        main(["rank", "--target-label", "b", "--sources-store", str(store), "--json", str(out)])
        == 0
    )
    saved = json.loads(out.read_text())
    want = rank_sources(rows[1], rows[[0, 2]], ["a", "c"])
    assert saved["labels"] == want.labels
    np.testing.assert_allclose(saved["scores"], want.scores, atol=1e-10)


# ---- files before stdout; a closed stdout ----------------------------------------------------


class _ClosedPipe:
    """A stdout whose reader went away (no fileno, as a captured stream)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("command", ["rank", "compare", "evaluate"])
def test_a_closed_stdout_exits_141_quietly_after_the_files(inputs, monkeypatch, capsys, command):
    pytest.importorskip("matplotlib")
    d, _ = inputs
    argv = _argv(command, d)
    files = {
        "rank": [
            "--bootstrap",
            "10",
            "--seed",
            "1",
            "--json",
            f"{d}/o.json",
            "--plot",
            f"{d}/o.png",
        ],
        "compare": ["--permutations", "9", "--seed", "1", "--out", f"{d}/o.json"],
        "evaluate": ["--bootstrap", "10", "--seed", "1", "--json", f"{d}/o.json"],
    }[command]
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main([*argv, *files]) == 141
    monkeypatch.undo()
    assert capsys.readouterr().err == ""
    assert json.loads((d / "o.json").read_text())["seed" if command == "compare" else "bootstrap"]
    if command == "rank":
        assert (d / "o.png").stat().st_size > 0


def test_rank_into_a_closed_pipe_writes_its_files_and_exits_quietly(inputs):
    """`fastrsa rank ... | head -0`: the reader is gone before the table is printed."""
    pytest.importorskip("matplotlib")
    d, _ = inputs
    argv = [*_argv("rank", d), "--bootstrap", "10", "--seed", "1"]
    argv += ["--json", f"{d}/o.json", "--plot", f"{d}/o.png"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastrsa", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # the reader goes away before the command prints anything
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err.decode()
    assert err == b""
    assert json.loads((d / "o.json").read_text())["bootstrap"]["seed"] == 1
    assert (d / "o.png").stat().st_size > 0


# ---- fastrsa.support: per_source, docstrings -------------------------------------------------


def test_per_source_writes_p_top1_once_from_top1():
    conf = RankingConfidence(
        labels=["a", "b"],
        top1=np.array([0.75, 0.25]),
        top_k={1: np.array([0.5, 0.5]), 3: np.array([1.0, 1.0])},  # inconsistent on purpose
        interval=np.array([[0.1, 0.2], [0.3, 0.4]]),
        level=0.9,
        n_boot=4,
    )
    rows = conf.per_source()
    assert rows[0] == {"label": "a", "p_top1": 0.75, "p_top3": 1.0, "ci_low": 0.1, "ci_high": 0.2}
    assert list(rows[1]) == ["label", "p_top1", "p_top3", "ci_low", "ci_high"]
    assert rows[1]["p_top1"] == 0.25
    no_one = RankingConfidence(
        ["a"], np.array([1.0]), {2: np.array([1.0])}, np.zeros((1, 2)), 0.5, 1
    )
    assert list(no_one.per_source()[0]) == ["label", "p_top1", "p_top2", "ci_low", "ci_high"]
    real = ranking_confidence(np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]), ["x", "y", "z"])
    assert [row["p_top1"] for row in real.per_source()] == real.top1.tolist() == [0.5, 0.0, 0.5]


def test_support_docstrings_have_no_bare_double_brackets():
    """mkdocs autorefs reads `x[k][s]` outside backticks as a cross-reference (strict build)."""
    import fastrsa.support as support

    objects = [support, *(obj for _, obj in inspect.getmembers(support))]
    objects += [obj for _, obj in inspect.getmembers(support.RankingConfidence)]
    for obj in objects:
        if inspect.getmodule(obj) is not support or not inspect.getdoc(obj):
            continue
        bare = re.sub(r"`[^`]*`", "", inspect.getdoc(obj))
        assert not re.search(r"\]\[", bare), (obj, bare)
