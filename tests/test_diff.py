"""`fastrsa diff OLD NEW`: regression comparison of saved results."""

import json

import numpy as np
import pytest

from fastrsa.cli import main
from fastrsa.diff import diff_results


@pytest.fixture
def pair(tmp_path, rng):
    old = {"rdms": rng.random((3, 10)), "similarity": rng.random((3, 3))}
    np.savez(tmp_path / "old.npz", **old)
    return tmp_path, old


def _new(tmp_path, arrays):
    np.savez(tmp_path / "new.npz", **arrays)
    return tmp_path / "new.npz"


def test_equal_and_within_tolerance(pair, capsys):
    tmp_path, old = pair
    new = _new(tmp_path, {k: v + 1e-9 for k, v in old.items()})
    assert main(["diff", str(tmp_path / "old.npz"), str(new), "--atol", "1e-8"]) == 0
    assert "equal: 2 entries" in capsys.readouterr().out


def test_beyond_tolerance_is_reported_and_exits_1(pair, capsys):
    tmp_path, old = pair
    changed = dict(old)
    changed["rdms"] = old["rdms"].copy()
    changed["rdms"][1, 7] += 0.01
    new = _new(tmp_path, changed)
    assert main(["diff", str(tmp_path / "old.npz"), str(new)]) == 1
    out = capsys.readouterr().out
    assert "rdms: 1 of 30 values differ, max |difference| 0.01 at (1, 7)" in out
    report = diff_results(tmp_path / "old.npz", new, atol=0.02)
    assert report.equal
    report = diff_results(tmp_path / "old.npz", new, atol=0, rtol=0.5)
    assert report.equal == bool(0.01 <= 0.5 * abs(old["rdms"][1, 7]))


def test_missing_keys_and_shapes(pair):
    tmp_path, old = pair
    new = _new(tmp_path, {"rdms": old["rdms"][:2], "extra": np.ones(2)})
    report = diff_results(tmp_path / "old.npz", new)
    assert report.only_old == ["similarity"] and report.only_new == ["extra"]
    assert report.mismatched == ["rdms: shape (3, 10) -> (2, 10)"]


def test_nan_handling(tmp_path):
    # .npy files are keyed by their stem: same names in two folders
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    np.save(tmp_path / "x" / "r.npy", np.array([1.0, np.nan]))
    np.save(tmp_path / "y" / "r.npy", np.array([np.nan, 1.0]))
    assert diff_results(tmp_path / "x" / "r.npy", tmp_path / "x" / "r.npy").equal
    report = diff_results(tmp_path / "x" / "r.npy", tmp_path / "y" / "r.npy")
    assert report.mismatched == ["r: NaN in different places"]


def test_json_results_ignore_metadata(tmp_path):
    base = {
        "labels": ["a", "b"],
        "similarity": [[1, 0.5], [0.5, 1]],
        "clusters": {"a": 1, "b": 2},
        "metadata": {"seconds": 1.0},
    }
    other = json.loads(json.dumps(base))
    other["metadata"]["seconds"] = 99.0
    (tmp_path / "old.json").write_text(json.dumps(base))
    (tmp_path / "new.json").write_text(json.dumps(other))
    assert diff_results(tmp_path / "old.json", tmp_path / "new.json").equal
    other["clusters"]["b"] = 1
    other["similarity"][0][1] = other["similarity"][1][0] = 0.6
    other["labels"] = ["a", "c"]
    (tmp_path / "new.json").write_text(json.dumps(other))
    report = diff_results(tmp_path / "old.json", tmp_path / "new.json")
    assert report.mismatched == ["labels[1]: 'b' -> 'c'"]
    assert report.out_of_tolerance[0].startswith("clusters.b: 1 of 1 values differ")
    assert report.out_of_tolerance[1].startswith("similarity: 2 of 4 values differ")


def test_errors_exit_2(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 2
    (tmp_path / "a.txt").write_text("x")
    assert main(["diff", str(tmp_path / "a.txt"), str(tmp_path / "a.txt")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["diff", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert (
        "no such file" in err and "expected .npy, .npz or .json" in err and "not valid JSON" in err
    )
