"""Hostile input to the taxonomy, evaluation and file API (issue 11): a correct result or a
one-line ValueError/TypeError/FileNotFoundError naming the user's argument, file, label or model;
never NaN in a result or a JSON file, nothing half written; through the CLI, exit 2 and one line."""

import io as stdio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from fastrsa import io
from fastrsa.cli import main
from fastrsa.io import array_files as io_arrays
from fastrsa.io import atomic as io_atomic
from fastrsa.taxonomy import (
    evaluate_transfer,
    load_affinities,
    load_taxonomy,
    rank_sources,
    taxonomy,
    taxonomy_from_similarity,
)

LABELS = ["a", "b", "c", "d", "e", "f"]


def _rdms(seed=0, k=6, n=12, d=5):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, d))
    return {LABELS[i]: pdist(latent + rng.standard_normal((n, d)), "correlation") for i in range(k)}


def _affinities(seed=1):
    rng = np.random.default_rng(seed)
    return {(s, t): float(rng.random()) for s in LABELS for t in LABELS if s != t}


def _similarity(seed=2):
    rng = np.random.default_rng(seed)
    sim = np.eye(6)
    sim[np.triu_indices(6, 1)] = rng.uniform(-0.5, 0.9, 15)
    return np.maximum(sim, sim.T)


def _cli_error(args, capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr, no traceback."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"fastrsa {args[0]}: error: ")
    return lines[0]


def _write_affinities(path, table):
    path.write_text(json.dumps({"affinity": {f"{s}__{t}": v for (s, t), v in table.items()}}))
    return path


# ---- 1. no NaN through the evaluation ----------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_evaluate_refuses_non_finite_affinity_naming_the_entry(bad):
    aff = _affinities()
    aff[("c", "e")] = bad
    with pytest.raises(ValueError, match=r"affinity of 'c__e' is (nan|inf|-inf)"):
        evaluate_transfer(_similarity(), LABELS, aff)


@pytest.mark.parametrize("bad", [True, False, "0.5", None, [0.5], 1j])
def test_evaluate_refuses_non_numeric_affinity_naming_the_entry(bad):
    aff = _affinities()
    aff[("b", "a")] = bad
    with pytest.raises(TypeError, match=r"affinity of 'b__a' is .*expected a number"):
        evaluate_transfer(_similarity(), LABELS, aff)


def test_evaluate_refuses_a_constant_target_naming_it():
    aff = _affinities()
    for s in LABELS:
        if s != "d":
            aff[(s, "d")] = 0.25
    with pytest.raises(ValueError, match=r"equally well to target 'd' .*undefined"):
        evaluate_transfer(_similarity(), LABELS, aff)
    sim = _similarity()
    sim[3, :] = sim[:, 3] = 0.1
    sim[3, 3] = 1.0
    with pytest.raises(ValueError, match=r"equally similar to target 'd'"):
        evaluate_transfer(sim, LABELS, _affinities())


def test_evaluate_result_is_finite_and_refuses_bad_labels():
    ev = evaluate_transfer(_similarity(), LABELS, _affinities())
    assert np.isfinite([ev.mean_pearson, ev.mean_spearman]).all()
    json.dumps(ev.to_json(), allow_nan=False)
    with pytest.raises(TypeError, match="labels must be a list of names, not one string"):
        evaluate_transfer(_similarity(), "abcdef", _affinities())
    with pytest.raises(ValueError, match=r"labels are not unique: \['a'\]"):
        evaluate_transfer(_similarity(), ["a", "a", "c", "d", "e", "f"], _affinities())
    with pytest.raises(TypeError, match="similarity must be real"):
        evaluate_transfer(_similarity().astype(complex), LABELS, _affinities())
    with pytest.raises(ValueError, match=r"aliases map labels 'a' and 'b' to the same"):
        evaluate_transfer(_similarity(), LABELS, _affinities(), aliases={"a": "x", "b": "x"})


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"affinity": {"a__b": true, "b__a": 0.5}}', r"'a__b' is True \(bool\); expected a num"),
        ('{"affinity": {"a__b": "0.5", "b__a": 0.5}}', r"'a__b' is '0.5' \(str\); expected"),
        ('{"affinity": {"a__b": null}}', r"'a__b' is None"),
        ('{"affinity": {"a__b": NaN}}', r"'a__b' is nan; it must be finite"),
        ('{"a__b": Infinity}', r"'a__b' is inf; it must be finite"),
        ('{"affinity": {"a__b": 1, "a__b": 2}}', r"key 'a__b' appears twice"),
        ('{"affinity": {"ab": 1}}', r"key 'ab' is not 'source__target'"),
        ('{"affinity": {"a__b__c": 1}}', r"key 'a__b__c' is not 'source__target'"),
        ("[1, 2]", r"expected an object of 'source__target'"),
        ("{}", r"holds no affinities"),
        ("{not json", r"is not valid JSON"),
    ],
)
def test_load_affinities_json_refuses_naming_file_and_key(tmp_path, text, match):
    path = tmp_path / "aff.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_affinities(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text,match",
    [
        ("source,target,value\na,b,nan\n", r"line 2: the affinity of 'a__b' is nan"),
        ("source,target,value\na,b,0.5\nb,a,inf\n", r"line 3: the affinity of 'b__a' is inf"),
        ("source,target,value\na,b,true\n", r"line 2: the affinity of 'a__b' is 'true'"),
        ("source,target,value\na,b,\n", r"'a__b' is ''; expected a number"),
        ("source,target,value\na,b,1\na,b,2\n", r"line 3: 'a__b' appears twice"),
        ("source,target\na,b\n", r"missing column\(s\) \['value'\]"),
        ("source,target,value\na,b\n", r"line 2 has too few fields"),
        ("", r"missing column"),
    ],
)
def test_load_affinities_csv_refuses_naming_file_and_line(tmp_path, text, match):
    path = tmp_path / "aff.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_affinities(path)
    assert str(path) in str(info.value)


def test_load_affinities_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "aff.csv"
    path.write_bytes("source,target,value\na,b,0.5\n".encode("utf-8-sig"))
    assert load_affinities(path) == {("a", "b"): 0.5}


@pytest.mark.parametrize("bad", [np.nan, np.inf, np.array([1.0, np.nan])])
def test_save_json_refuses_nan_naming_the_key_and_keeps_the_old_file(tmp_path, bad):
    path = tmp_path / "out.json"
    io.save_json(path, {"ok": 1})
    with pytest.raises(ValueError, match=r"rows\[1\]\.x.* JSON cannot hold NaN") as info:
        io.save_json(path, {"rows": [{"x": 1.0}, {"x": bad}]})
    assert str(path) in str(info.value)
    assert json.loads(path.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_save_json_takes_numpy_values(tmp_path):
    path = io.save_json(tmp_path / "n.json", {"a": np.float32(0.5), "b": np.arange(3)})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2]}


def test_cli_evaluate_refuses_nan_and_constant_targets_without_writing_json(tmp_path, capsys):
    np.savez(tmp_path / "rdms.npz", **_rdms())
    out = tmp_path / "eval.json"
    table = {k: v for k, v in _affinities().items()}
    base = ["evaluate", "--rdms", tmp_path / "rdms.npz", "--json", out, "--affinities"]
    table[("e", "b")] = float("nan")
    line = _cli_error(base + [_write_affinities(tmp_path / "nan.json", table)], capsys)
    assert "'e__b' is nan" in line and "nan.json" in line
    table[("e", "b")] = True
    line = _cli_error(base + [_write_affinities(tmp_path / "bool.json", table)], capsys)
    assert "'e__b' is True (bool)" in line
    table = _affinities()
    for s in LABELS:
        if s != "c":
            table[(s, "c")] = 0.5
    line = _cli_error(base + [_write_affinities(tmp_path / "const.json", table)], capsys)
    assert "target 'c'" in line
    assert not out.exists()
    assert (
        main([str(a) for a in base + [_write_affinities(tmp_path / "ok.json", _affinities())]]) == 0
    )
    saved = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert np.isfinite([saved["mean_pearson"], saved["mean_spearman"]]).all()


# ---- 2. no silent data loss in taxonomy inputs --------------------------------------------------


def test_complex_rdm_is_refused_naming_the_label(tmp_path, capsys):
    rdms = _rdms()
    rdms["c"] = rdms["c"] + 1j * rdms["c"]
    with pytest.raises(TypeError, match=r"rdms\['c'\] must be real; got complex"):
        taxonomy(rdms)
    with pytest.raises(TypeError, match=r"source_rdms\['c'\] must be real"):
        rank_sources(_rdms()["a"], rdms)
    with pytest.raises(TypeError, match=r"target_rdm must be real"):
        rank_sources(rdms["c"], _rdms())
    np.savez(tmp_path / "rdms.npz", **rdms)
    line = _cli_error(["taxonomy", "--rdms", tmp_path / "rdms.npz", "--out", tmp_path], capsys)
    assert "'c'" in line and "complex" in line
    assert not (tmp_path / "taxonomy.json").exists()


@pytest.mark.parametrize(
    "change,error,match",
    [
        (
            lambda r: r.__setitem__("d", np.where(np.arange(66) == 7, np.nan, r["d"])),
            ValueError,
            r"rdms\['d'\] holds NaN or Inf \(first at index 7\)",
        ),
        (lambda r: r.__setitem__("b", np.full(66, 0.5)), ValueError, r"rdms\['b'\] is constant"),
        (
            lambda r: r.__setitem__("e", squareform(r["e"]).astype(str)),
            TypeError,
            r"rdms\['e'\] must hold numbers",
        ),
    ],
)
def test_bad_rdm_is_named_by_its_label(change, error, match):
    rdms = _rdms()
    change(rdms)
    with pytest.raises(error, match=match):
        taxonomy(rdms)


def test_cli_taxonomy_refuses_bad_rdms_clusters_and_linkage_in_one_line(tmp_path, capsys):
    rdms = _rdms()
    rdms["b"] = np.full(66, 0.5)
    np.savez(tmp_path / "const.npz", **rdms)
    line = _cli_error(["taxonomy", "--rdms", tmp_path / "const.npz", "--out", tmp_path], capsys)
    assert "'b'" in line and "constant" in line
    rdms = _rdms()
    rdms["e"][3] = np.inf
    np.savez(tmp_path / "inf.npz", **rdms)
    line = _cli_error(["taxonomy", "--rdms", tmp_path / "inf.npz", "--out", tmp_path], capsys)
    assert "'e'" in line and "NaN or Inf" in line
    np.savez(tmp_path / "rdms.npz", **_rdms())
    base = ["taxonomy", "--rdms", tmp_path / "rdms.npz", "--out", tmp_path / "tx"]
    assert "between 1 and 6" in _cli_error(base + ["--clusters", "7"], capsys)
    assert "between 1 and 6" in _cli_error(base + ["--clusters", "0"], capsys)
    assert "linkage must be one of" in _cli_error(base + ["--linkage", "centroidx"], capsys)
    assert not (tmp_path / "tx" / "taxonomy.json").exists()
    assert not (tmp_path / "taxonomy.json").exists()


@pytest.mark.parametrize(
    "n_clusters,error,match",
    [
        (2.5, TypeError, r"n_clusters must be an int >= 1 and <= the number of models \(6\)"),
        (True, TypeError, r"got True \(bool\)"),
        ("2", TypeError, r"got '2' \(str\)"),
        (3.0, TypeError, r"got 3.0 \(float\)"),
        (0, ValueError, r"n_clusters must be between 1 and 6 \(the number of models\); got 0"),
        (7, ValueError, r"between 1 and 6 .*got 7"),
    ],
)
def test_n_clusters_must_be_an_int_in_range(n_clusters, error, match):
    with pytest.raises(error, match=match):
        taxonomy(_rdms(), n_clusters=n_clusters)
    with pytest.raises(error, match=match):
        taxonomy_from_similarity(_similarity(), LABELS, n_clusters=n_clusters)
    assert len(set(taxonomy(_rdms(), n_clusters=np.int64(2)).clusters.values())) <= 2


def test_linkage_and_labels_are_checked_everywhere():
    with pytest.raises(ValueError, match="linkage must be one of"):
        taxonomy_from_similarity(_similarity(), LABELS, linkage="bogus")
    with pytest.raises(ValueError, match="linkage must be one of"):
        taxonomy(_rdms(), linkage=["average"])
    arr = np.stack(list(_rdms().values()))
    with pytest.raises(ValueError, match=r"labels are not unique: \['x'\]"):
        taxonomy(arr, labels=["x", "x", "c", "d", "e", "f"])
    with pytest.raises(ValueError, match=r"labels are not unique: \['1'\]"):
        taxonomy(arr, labels=["1", 1, "c", "d", "e", "f"])
    with pytest.raises(TypeError, match="not one string"):
        taxonomy(arr, labels="abcdef")
    with pytest.raises(ValueError, match=r"labels are not unique"):
        taxonomy_from_similarity(_similarity(), ["a", "a", "c", "d", "e", "f"])
    with pytest.raises(ValueError, match="rdms holds no RDMs"):
        taxonomy({})


@pytest.mark.parametrize(
    "case,error,match",
    [
        ("asymmetric", ValueError, r"not symmetric: similarity\['a', 'b'\]"),
        ("nan", ValueError, r"NaN or Inf \(first at similarity\['b', 'c'\]\)"),
        ("diagonal", ValueError, r"ones on its diagonal.*similarity\['a', 'a'\] = 2.0"),
        ("range", ValueError, r"in \[-1, 1\]; similarity\['a', 'c'\] = 1.5"),
        ("complex", TypeError, r"similarity must be real"),
        ("strings", TypeError, r"similarity must hold numbers"),
        ("one model", ValueError, r"at least 2 models"),
    ],
)
def test_taxonomy_from_similarity_refuses(case, error, match):
    sim, labels = _similarity(), list(LABELS)
    if case == "asymmetric":
        sim[0, 1] += 0.1
    elif case == "nan":
        sim[1, 2] = sim[2, 1] = np.nan
    elif case == "diagonal":
        sim = sim * 2
    elif case == "range":
        sim[0, 2] = sim[2, 0] = 1.5
    elif case == "complex":
        sim = sim.astype(complex)
    elif case == "strings":
        sim = sim.astype(str)
    elif case == "one model":
        sim, labels = np.ones((1, 1)), ["a"]
    with pytest.raises(error, match=match):
        taxonomy_from_similarity(sim, labels)


# ---- 3. a taxonomy's files are written as one set -----------------------------------------------

SET = ("taxonomy.json", "taxonomy.npz", "taxonomy.png", "taxonomy.svg")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_save_killed_while_writing_keeps_the_complete_old_set(tmp_path, monkeypatch):
    import matplotlib.figure

    old = taxonomy(_rdms(0), n_clusters=2)
    old.save(tmp_path)
    before = _snapshot(tmp_path)
    assert set(before) == set(SET)
    real = matplotlib.figure.Figure.savefig
    calls = []

    def killed_after_first(self, *args, **kwargs):
        calls.append(kwargs.get("format"))
        if len(calls) > 1:
            raise KeyboardInterrupt("killed between files")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_after_first)
    new = taxonomy(_rdms(5), n_clusters=3)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path)
    assert _snapshot(tmp_path) == before  # the old set, whole; no temporaries
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", real)
    new.save(tmp_path)
    again = load_taxonomy(tmp_path)
    np.testing.assert_array_equal(again.similarity, new.similarity)
    assert set(_snapshot(tmp_path)) == set(SET)


def test_save_killed_after_the_commit_is_completed_and_a_mixed_set_is_refused(
    tmp_path, monkeypatch
):
    old = taxonomy(_rdms(0))
    old.save(tmp_path, plots=False)
    new = taxonomy(_rdms(5))
    real_replace = os.replace
    moves = []

    def replace_once(src, dst):
        moves.append(dst)
        if len(moves) > 1:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(ValueError, match=r"cannot finish writing .*taxonomy.json.*completes it"):
        new.save(tmp_path, plots=False)
    monkeypatch.setattr(os, "replace", real_replace)
    # taxonomy.npz is new, taxonomy.json still old: a reader must not take that mix
    pending = [p.name for p in tmp_path.iterdir() if p.name.endswith(".commit")]
    assert len(pending) == 1
    mixed = json.loads((tmp_path / "taxonomy.json").read_text())
    assert mixed["similarity"] == old.similarity.tolist()
    with pytest.raises(ValueError, match=r"taxonomy.npz does not belong with taxonomy.json"):
        io.verify_set(tmp_path, mixed["metadata"]["set"]["files"], "taxonomy.json")
    loaded = load_taxonomy(tmp_path)  # completes the committed save first
    np.testing.assert_array_equal(loaded.similarity, new.similarity)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taxonomy.json", "taxonomy.npz"]
    np.testing.assert_array_equal(
        io.load_arrays(tmp_path / "taxonomy.npz")["similarity"], new.similarity
    )


def test_load_taxonomy_refuses_a_set_mixed_by_hand(tmp_path):
    taxonomy(_rdms(0)).save(tmp_path / "old", plots=False)
    taxonomy(_rdms(5)).save(tmp_path / "new", plots=False)
    (tmp_path / "new" / "taxonomy.npz").write_bytes(
        (tmp_path / "old" / "taxonomy.npz").read_bytes()
    )
    with pytest.raises(ValueError, match=r"new: taxonomy.npz does not belong with taxonomy.json"):
        load_taxonomy(tmp_path / "new")


def test_save_without_plots_removes_figures_of_an_earlier_save(tmp_path):
    taxonomy(_rdms(0)).save(tmp_path)
    taxonomy(_rdms(5)).save(tmp_path, plots=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taxonomy.json", "taxonomy.npz"]
    (tmp_path / "notes.txt").write_text("mine")  # other files of the folder are left alone
    taxonomy(_rdms(0)).save(tmp_path, plots=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_temporaries_of_killed_processes_are_cleaned_by_the_next_write(tmp_path):
    """Real kills (os._exit in forked children) in the middle of writes; each next write into the
    folder removes what the killed one left, and the old set stays complete meanwhile."""
    script = textwrap.dedent(
        f"""
        import json, os, numpy as np, matplotlib.figure
        from scipy.spatial.distance import pdist
        from fastrsa import io
        from fastrsa.taxonomy import taxonomy
        folder = {str(tmp_path)!r}
        rng = np.random.default_rng(0)
        rdms = {{f"m{{i}}": pdist(rng.standard_normal((10, 4)), "correlation") for i in range(4)}}
        taxonomy(rdms).save(folder)
        real = matplotlib.figure.Figure.savefig
        def die(self, f, format=None, **kw):
            if format == "svg":
                os._exit(9)
            return real(self, f, format=format, **kw)
        def half(f):
            f.write(b"partial")
            os._exit(9)
        def killed(fn):
            pid = os.fork()
            if pid == 0:
                fn()
                os._exit(0)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
            return sorted(os.listdir(folder))
        seen = [killed(lambda: io.atomic_write(os.path.join(folder, "other.json"), half))]
        matplotlib.figure.Figure.savefig = die
        new = taxonomy({{k: v[::-1] for k, v in rdms.items()}})
        seen.append(killed(lambda: new.save(folder)))
        with open(os.path.join(folder, "..", "seen.json"), "w") as f:
            json.dump(seen, f)
        """
    )
    folder = tmp_path / "out"
    script = script.replace(repr(str(tmp_path)), repr(str(folder)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    first, second = json.loads((tmp_path / "seen.json").read_text())
    assert any(n.startswith(".other.json.") and n.endswith(".tmp") for n in first)
    assert not any(n.startswith(".other.json.") for n in second)  # cleaned by the set write
    assert any(n.startswith(".taxonomy.json.") and n.endswith(".tmp") for n in second)
    assert set(SET) <= set(second)
    assert load_taxonomy(folder).labels == ["m0", "m1", "m2", "m3"]  # the old set, complete
    # a temporary of a live process (a concurrent writer: here, this one) is left alone
    live = folder / f".x.json.{os.getpid()}-{io_atomic.HOST}-abcd1234.tmp"
    live.write_bytes(b"in flight")
    io.save_json(folder / "single.json", {"ok": True})
    assert [n for n in sorted(os.listdir(folder)) if n.startswith(".")] == [live.name]
    taxonomy(_rdms(5)).save(folder)
    assert load_taxonomy(folder).labels == list(LABELS)


# ---- 4. reading arrays: forged headers, bombs, non-array members; unwritable outputs ------------


def _huge_header(shape=(10**6, 10**6)) -> bytes:
    buf = stdio.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + b"\0" * 64


def test_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "huge.npy"
    path.write_bytes(_huge_header())
    with pytest.raises(ValueError, match=r"--rdms: .*huge.npy claims shape \(1000000, 1000000\)"):
        io.load_arrays(path, "--rdms")
    line = _cli_error(["rdms", path, "--out", tmp_path / "o.npz"], capsys)
    assert "huge.npy" in line and "truncated or forged" in line
    np.save(tmp_path / "short.npy", np.arange(100.0))
    data = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[: len(data) - 8])
    with pytest.raises(ValueError, match=r"short.npy claims shape \(100,\) \(800 bytes\)"):
        io.load_arrays(tmp_path / "short.npy")
    assert not (tmp_path / "o.npz").exists()


def test_npz_member_claiming_terabytes_is_refused(tmp_path, capsys):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.npy", _npy_bytes(np.arange(3.0)))
        zf.writestr("x.npy", _huge_header())
    with pytest.raises(ValueError, match=r"huge.npz, member 'x.npy' claims shape"):
        io.load_arrays(path)
    line = _cli_error(["compare", path], capsys)
    assert "huge.npz" in line and "'x.npy'" in line


def _npy_bytes(arr) -> bytes:
    buf = stdio.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize(
    "member,data,match",
    [
        ("notes.txt", b"hello", r"member 'notes.txt' is not an .npy array"),
        ("x.npy", b"hello, not an array", r"member 'x.npy' is not a valid .npy array"),
        ("folder/", b"", r"member 'folder/' is not an .npy array"),
        ("p.npy", _npy_bytes(np.array([{"a": 1}], dtype=object)), r"'p.npy'.*Python objects"),
    ],
)
def test_npz_with_a_non_array_member_names_file_and_member(tmp_path, capsys, member, data, match):
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good.npy", _npy_bytes(np.arange(6.0)))
        zf.writestr(member, data)
    with pytest.raises(ValueError, match=match) as info:
        io.load_arrays(path, "--rdms")
    assert str(path) in str(info.value)
    line = _cli_error(["compare", path], capsys)
    assert "odd.npz" in line and member in line


def test_npz_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(io_arrays, "BOMB_MIN", 2**20)  # the real floor: 64 MiB; same rule, smaller
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_bytes(np.zeros(2**19)))  # 4 MiB of zeros -> a few KiB
    with pytest.raises(ValueError, match=r"member 'x.npy' would inflate .*decompression bomb"):
        io.load_arrays(path)
    ok = tmp_path / "ok.npz"
    np.savez_compressed(ok, x=np.random.default_rng(0).random(2**18))  # 2 MiB, incompressible
    assert io.load_arrays(ok)["x"].shape == (2**18,)


def test_pickles_are_still_refused_without_running_code(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "evil.npz", x=np.array([Evil()], dtype=object))
    for name in ("evil.npy", "evil.npz"):
        with pytest.raises(ValueError, match="could not read .*Python objects"):
            io.load_arrays(tmp_path / name)
    assert not marker.exists()


@pytest.mark.parametrize("problem", ["folder", "under a file", "permission", "replace fails"])
def test_unwritable_output_path_is_a_value_error_naming_it(tmp_path, monkeypatch, problem):
    target = tmp_path / "out.json"
    if problem == "folder":
        target.mkdir()
        target.with_suffix(".npz").mkdir()
        match = "is a folder"
    elif problem == "under a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "sub" / "out.json"
        match = "is a file, not a folder"
    elif problem == "permission":  # chmod does not stop root: make mkstemp fail as it would

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
        match = "Permission denied"
    else:

        def denied(src, dst):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "replace", denied)
        match = "Permission denied"
    for write in (
        lambda: io.save_json(target, {"a": 1}),
        lambda: io.save_npz(target.with_suffix(".npz"), a=np.arange(3)),
    ):
        with pytest.raises(ValueError, match=match) as info:
            write()
        assert "cannot write" in str(info.value) and str(target.parent) in str(info.value)
    left = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert left == []


def test_taxonomy_save_into_a_file_or_onto_a_folder_member(tmp_path, monkeypatch):
    result = taxonomy(_rdms())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file: it is a file, not a folder"):
        result.save(tmp_path / "file")
    (tmp_path / "out" / "taxonomy.npz").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"taxonomy.npz: it is a folder"):
        result.save(tmp_path / "out", plots=False)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(ValueError, match=r"cannot write .*taxonomy.json: Permission denied"):
        result.save(tmp_path / "ro", plots=False)
    assert [p for p in tmp_path.rglob("*.tmp")] == []
