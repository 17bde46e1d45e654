"""`fastrsa compare --permutations K --seed S`: p-values beside the similarity, in the JSON with
the seed and count, equal to fastrsa.stats.permutation_test with the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastrsa.cli import main
from fastrsa.stats import permutation_test


def test_compare_permutations_json(tmp_path, rng, capsys):
    rdms = rng.random((3, 45))
    np.save(tmp_path / "r.npy", rdms)
    out = tmp_path / "sim.json"
    argv = ["compare", str(tmp_path / "r.npy"), "--permutations", "99", "--seed", "7"]
    assert main([*argv, "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["permutations"] == 99 and saved["seed"] == 7
    want = permutation_test(rdms, n_perm=99, seed=7).p
    np.testing.assert_allclose(np.array(saved["p_values"]), want, atol=0)
    assert "p-values (99 permutations of the images, seed 7)" in capsys.readouterr().out


def test_compare_permutations_draws_and_reports_a_seed(tmp_path, rng, capsys):
    np.save(tmp_path / "r.npy", rng.random((2, 10)))
    assert main(["compare", str(tmp_path / "r.npy"), "--permutations", "9"]) == 0
    assert "seed " in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,match",
    [(["--seed", "3"], "--seed: seeds --permutations"), (["--permutations", "0"], "n_perm")],
)
def test_compare_permutations_bad_input(tmp_path, rng, capsys, extra, match):
    np.save(tmp_path / "r.npy", rng.random((2, 10)))
    assert main(["compare", str(tmp_path / "r.npy"), *extra]) == 2
    assert match in capsys.readouterr().err


def test_taxonomy_bootstrap_support_in_json(tmp_path, rng, capsys):
    x = rng.standard_normal((5, 12, 6))
    from fastrsa import rdms

    np.savez(tmp_path / "r.npz", **{f"m{i}": np.asarray(rdms(x[i])) for i in range(5)})
    argv = ["taxonomy", "--rdms", str(tmp_path / "r.npz"), "--clusters", "2"]
    argv += ["--bootstrap", "20", "--seed", "3", "--out", str(tmp_path / "tax")]
    assert main(argv) == 0
    assert "bootstrap support (20 resamples of the images, seed 3)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "tax" / "taxonomy.json").read_text())
    assert saved["bootstrap"]["n_boot"] == 20 and saved["bootstrap"]["seed"] == 3
    assert all(0.0 <= v <= 1.0 for v in saved["bootstrap"]["support"])


def test_rank_bootstrap_prints_confidence(tmp_path, rng, capsys):
    rows = rng.random((4, 45))
    np.save(tmp_path / "target.npy", rows[0])
    np.savez(tmp_path / "sources.npz", a=rows[1], b=rows[2], c=rows[3])
    argv = ["rank", "--target", str(tmp_path / "target.npy"), "--sources"]
    argv += [str(tmp_path / "sources.npz"), "--bootstrap", "30", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bootstrap: 30 resamples of the images, seed 1" in out and out.count("P(top-1)") >= 3
