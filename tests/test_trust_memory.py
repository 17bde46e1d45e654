"""Issue 22, memory bounded for every input kind: RDM files read a block of RDMs at a time
(fastrsa.io.RDMFile, RDMSource) and checked in the same pass, within the budget; RDM sources
that the sweep's method cannot compare refused before any work; spill folders of killed sweeps
removed by the next run (a running one's kept); FASTRSA_SPILL_DIR naming a missing folder
refused naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

import fastrsa
from fastrsa import io
from fastrsa.cli import main
from fastrsa.io.atomic import HOST
from fastrsa.sweeps import RDMSource
from fastrsa.sweeps.file_sources import check_rdm_file, open_rdm_file
from fastrsa.sweeps.spill import SPILL_ENV, spill_dir


def _rdms(k: int = 4, n: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([pdist(rng.standard_normal((n, 3)), "correlation") for _ in range(k)])


def _files(folder):
    """{kind: path} of every kind of RDM file load_rdms reads, K = 4 RDMs of n = 7 each."""
    rows = _rdms()
    square = np.stack([squareform(r) for r in rows])
    out = {}
    for kind, write in {
        "npz condensed": lambda p: np.savez(p, **{f"m{i}": r for i, r in enumerate(rows)}),
        "npz square": lambda p: np.savez(p, **{f"m{i}": s for i, s in enumerate(square)}),
        "npz batch": lambda p: np.savez_compressed(p, rdms=rows),
        "npz stack": lambda p: np.savez(p, rdms=square),
        "npy rows": lambda p: np.save(p, rows.astype(np.float32)),
        "npy stack": lambda p: np.save(p, square),
        "npy fortran": lambda p: np.save(p, np.asfortranarray(rows)),
        "npy ints": lambda p: np.save(p, (rows * 100).astype(np.int32)),
        "npy one": lambda p: np.save(p, rows[0]),
    }.items():
        path = folder / f"{kind.replace(' ', '_')}.{kind[:3]}"
        write(path)
        out[kind] = path
    return out


def _same_as_load_rdms(path, reading="auto"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        labels, want = io.load_rdms(path, "rdms", reading)
        rf = io.RDMFile(path, "rdms", reading)
    with rf:
        assert rf.labels == labels and rf.m == want.shape[1] and rf.dtype == want.dtype
        for label, row in zip(labels[::-1], want[::-1], strict=True):  # any order
            np.testing.assert_array_equal(rf.rdm(label), row)
        found = rf.scan(1)  # one RDM at a time
        assert not found.constant.any() and not found.zero.any()


def test_rdm_file_reads_what_load_rdms_reads(tmp_path):
    for path in _files(tmp_path).values():
        _same_as_load_rdms(path)
    square = squareform(_rdms(1, 4)[0])  # (4, 4): 4 is not a condensed length; (6, 6) is
    rows = np.random.default_rng(1).random((6, 6))
    np.save(tmp_path / "sq.npy", square)
    np.save(tmp_path / "rows6.npy", rows)
    np.save(tmp_path / "rdm6.npy", squareform(_rdms(1, 6)[0][:15]))
    for name, reading in (("sq", "auto"), ("sq", "square"), ("rows6", "auto"), ("rdm6", "auto")):
        _same_as_load_rdms(tmp_path / f"{name}.npy", reading)
    _same_as_load_rdms(tmp_path / "rows6.npy", "condensed")


def test_rdm_file_refuses_what_load_rdms_refuses(tmp_path):
    """The same error (type and words) as io.load_rdms, the values checked by scan."""
    good = _rdms()
    nan = good.copy()
    nan[2, 5] = np.nan
    asym = squareform(good[0])
    asym[0, 1] += 1
    cases = {
        "nan.npy": nan,
        "short.npy": np.zeros((3, 4)),
        "two.npy": np.zeros((3, 1)),
        "cube.npy": np.zeros((2, 3, 4)),
        "text.npy": np.array(["a", "b", "c"]),
        "empty.npy": np.zeros((0, 3)),
        "asym.npy": asym,  # 7 is not a condensed length: must be one square RDM
    }
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
    np.savez(tmp_path / "mixed.npz", a=good[0], b=_rdms(1, 5)[0])
    np.savez(tmp_path / "stack.npz", s=np.stack([asym, asym]))
    (tmp_path / "junk.npz").write_bytes(b"PK junk")
    for name in [*cases, "mixed.npz", "stack.npz", "junk.npz", "missing.npy"]:
        with pytest.raises((ValueError, TypeError, FileNotFoundError)) as want:
            io.load_rdms(tmp_path / name, "--rdms")
        with pytest.raises(type(want.value)) as got:
            io.RDMFile(tmp_path / name, "--rdms").scan(1 << 20)
        if name != "junk.npz":  # zip's own words differ by reader
            assert str(got.value) == str(want.value), name


def test_rdm_sources_of_every_kind_match_the_file(tmp_path):
    pytest.importorskip("zarr")
    import zarr

    rows = _rdms()
    group = zarr.open_group(str(tmp_path / "r.zarr"), mode="w")
    group.create_array("stack", data=rows, chunks=(1, rows.shape[1]))
    group.create_array("one", data=rows[0], chunks=(rows.shape[1],))
    srcs = fastrsa.sweeps.resolve_sources([RDMSource(tmp_path / "r.zarr")])
    assert [s.label for s in srcs] == ["one", "stack[0]", "stack[1]", "stack[2]", "stack[3]"]
    for src, want in zip(srcs, [rows[0], *rows], strict=True):
        src.check(["default"], 7)
        (layer, got), *_ = src.rdms(["default"], None, "correlation", "numpy", None, tmp_path)
        np.testing.assert_array_equal(got, want)


# ---- memory ------------------------------------------------------------------------------------


def test_a_sweep_over_an_rdm_file_holds_the_budget_not_the_file(tmp_path, monkeypatch):
    """`fastrsa sweep --rdms FILE --memory 1MB`: the allocations traced while the command
    checks the file and the sweep checks and reads its RDMs stay within the budget plus a fixed
    allowance (2 MiB: the file's hashing reads 1 MiB blocks; the sources and the store's
    objects) for a file 5 x the budget. HEAD held the whole file, twice (the command's check and
    the sources' cache). The tile stage, which reads the store and not the file, is left out
    here (its blocks: tests/test_sweep_store.py)."""
    budget = 10**6
    rdms = _rdms(60, 150, seed=2)  # 60 x 11175 float64: 5.4 MB
    np.save(tmp_path / "big.npy", rdms)
    np.save(tmp_path / "warm.npy", rdms[:3])
    monkeypatch.setattr(fastrsa.sweeps.run, "tile_units", lambda *a, **k: ([], 0))
    args = ["sweep", "--memory", "1MB", "--no-progress", "--rdms"]
    assert main([*args, str(tmp_path / "warm.npy"), "--store", str(tmp_path / "w")]) == 0
    tracemalloc.start()
    try:
        assert main([*args, str(tmp_path / "big.npy"), "--store", str(tmp_path / "s")]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < budget + (2 << 20), f"peak {peak:,} bytes of traced allocations"
    np.testing.assert_array_equal(np.asarray(fastrsa.open_store(tmp_path / "s").rdms()), rdms)


def test_the_check_reads_a_block_at_a_time(tmp_path):
    """check_rdm_file: one pass within an eighth of the budget per block, kept for the sweep."""
    rdms = _rdms(64, 40, seed=3)  # 64 x 780 float64: 400 kB
    np.save(tmp_path / "r.npy", rdms)
    tracemalloc.start()
    try:
        found = check_rdm_file(tmp_path / "r.npy", memory=64 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"peak {peak:,}"
    assert len(found.constant) == 64 and not found.constant.any()
    assert open_rdm_file(tmp_path / "r.npy").found is found  # not read again


# ---- RDM sources refused before any work -------------------------------------------------------


def test_a_constant_rdm_is_refused_before_any_work(tmp_path):
    rdms = _rdms(3)
    rdms[1] = 0.5
    np.savez(tmp_path / "r.npz", a=rdms[0], flat=rdms[1], c=rdms[2])
    store = tmp_path / "s"
    for method in ("spearman", "pearson", "kendall"):
        with pytest.raises(ValueError) as err:
            fastrsa.sweep([RDMSource(tmp_path / "r.npz")], store=store, method=method)
        assert "source 'flat'" in str(err.value) and "layer 'default'" in str(err.value)
        assert "constant" in str(err.value) and method in str(err.value)
        assert not store.exists()
    np.savez(tmp_path / "z.npz", a=rdms[0], zero=np.zeros_like(rdms[0]), c=rdms[2])
    with pytest.raises(ValueError, match=r"source 'zero'.*layer 'v1'.*all zeros.*cosine"):
        fastrsa.sweep([RDMSource(tmp_path / "z.npz")], layers="v1", store=store, method="cosine")
    assert not store.exists()
    for method in ("cosine", "rho-a"):  # what these compare: a constant RDM is fine
        src = fastrsa.sweeps.resolve_sources([RDMSource(tmp_path / "r.npz")])[1]
        src.check_rdms(["default"], method)
    code = main(["sweep", "--rdms", str(tmp_path / "r.npz"), "--store", str(store)])
    assert code == 2 and not store.exists()


# ---- spill folders -----------------------------------------------------------------------------


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_spill_folders_of_killed_runs_are_removed_running_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(SPILL_ENV, str(tmp_path))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp_path / f".fastrsa-spill.{_gone_pid()}-{HOST}-abc.tmp"
        alive = tmp_path / f".fastrsa-spill.{live.pid}-{HOST}-def.tmp"
        for folder in (dead, alive):
            (folder / "tmpx").mkdir(parents=True)
            (folder / "tmpx" / ".fastrsa-spill-1.bin").write_bytes(b"x" * 100)
        other = tmp_path / "mine.txt"
        other.write_text("not a spill")
        np.save(tmp_path / "f.npy", np.random.default_rng(0).standard_normal((6, 100)))
        fastrsa.sweep([tmp_path / "f.npy"], store=tmp_path / "s", memory=4096)  # spills
        assert not dead.exists() and alive.exists() and other.exists()
        ours = spill_dir()
        assert os.path.dirname(ours) == str(tmp_path) and os.listdir(ours) == []
    finally:
        live.kill()
        live.wait()


def test_a_missing_spill_folder_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "such"
    monkeypatch.setenv(SPILL_ENV, str(missing))
    np.save(tmp_path / "f.npy", np.random.default_rng(0).standard_normal((6, 4)))
    with pytest.raises(ValueError, match=rf"FASTRSA_SPILL_DIR={missing}: no such folder"):
        fastrsa.sweep([tmp_path / "f.npy"], store=tmp_path / "s")
    assert not (tmp_path / "s").exists() and not missing.exists()
    code = main(["sweep", "--features", str(tmp_path / "f.npy"), "--store", str(tmp_path / "s")])
    assert code == 2 and not (tmp_path / "s").exists()
