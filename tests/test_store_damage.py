"""A finished sweep store, damaged file by file (the index and its copy, every kind of zarr.json,
chunks of RDMs, ranks and similarities, done-markers; each deleted, truncated, overwritten with
garbage): every read (open_store, Store.rdms, .similarity, .compare, `compare --store`,
`taxonomy --store`, `sweep --status`) either refuses with one line naming the damage or gives
the undamaged store's results, and one re-run of the same sweep recomputes exactly what was
damaged (results equal, `--verify` clean). A refused run changes no file of the store."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

import fastrsa
from fastrsa.cli import main
from fastrsa.errors import UserError
from fastrsa.sweeps import open_store
from fastrsa.taxonomy import taxonomy_from_store

pytest.importorskip("zarr")

N, K = 8, 5  # images, sources
MEMORY = 2000  # bytes: blocks of 2 rows {m0 m1} {m2 m3} {m4}: 6 tiles, 9 similarity chunks

# kind -> (file, what a read names, (RDMs, tiles) one re-run recomputes)
KINDS = {
    "index": ("fastrsa.json", "fastrsa.json", (0, 0)),
    "index-copy": ("fastrsa.copy.json", "fastrsa.copy.json", (0, 0)),
    "root-group": ("zarr.json", "zarr.json", (0, 0)),
    "rdms-group": ("rdms/zarr.json", "rdms/zarr.json", (0, 0)),
    "rdms-meta": ("rdms/0/zarr.json", "rdms/0/zarr.json", (0, 0)),
    "ranks-meta": ("ranks/0/zarr.json", "ranks/0/zarr.json", (0, 0)),
    "similarity-meta": ("similarity/0/spearman/zarr.json", "similarity/0/spearman", (0, 0)),
    "rdm-chunk": ("rdms/0/c/1/0", "'m1'", (1, 0)),
    "rank-chunk": ("ranks/0/c/2/0", "'m2'", (1, 0)),
    "tile-chunk": ("similarity/0/spearman/c/0/0", "0,0", (0, 1)),
    "mirror-chunk": ("similarity/0/spearman/c/2/0", "0,2", (0, 1)),  # an edge block's
    "rdm-marker": ("done/rdm/0/{m1}", "'m1'", (1, 0)),
    "tile-marker": ("done/tile/0/spearman/0-1", "0,1", (0, 1)),
}
DAMAGE = ("delete", "truncate", "garbage")


def _damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    else:
        path.write_bytes(b"garbage{\x00\xff")


def _hashes(folder: Path) -> dict[str, str]:
    """{file: sha256} of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _sweep(sources, store, **kw):
    return fastrsa.sweep(sources, store=str(store), memory=MEMORY, progress=False, **kw)


def _cli(*argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `fastrsa ARGV` run here."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def _reads(store: Path, targets: np.ndarray) -> dict:
    """Every read of the store: {name: result, or ("refused", one-line message)}."""
    out: dict = {}

    def attempt(name, read):
        try:
            out[name] = read()
        except (UserError, ValueError) as err:
            out[name] = ("refused", str(err))

    attempt("open", lambda: open_store(store).labels)
    attempt("rdms", lambda: np.asarray(open_store(store).rdms()))
    attempt("similarity", lambda: open_store(store).similarity())
    attempt("compare", lambda: open_store(store).compare(targets))
    attempt("pearson", lambda: open_store(store).compare(targets, method="pearson"))
    attempt("taxonomy", lambda: taxonomy_from_store(open_store(store), n_clusters=2).clusters)
    for name, argv in {
        "cli-compare": ("compare", "--store", store),
        "cli-status": ("sweep", "--status", store),
    }.items():
        code, text, err = _cli(*argv)
        if code == 0:  # --status reports the damage it finds: its lines differ, not its code
            out[name] = "ok" if name == "cli-status" else text
        else:
            assert code == 2 and err.count("\n") == 1, (name, code, err)  # one line, exit 2
            out[name] = ("refused", err)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(folder, sources, targets, the undamaged store, its reads) of a finished sweep."""
    folder = tmp_path_factory.mktemp("damage")
    rng = np.random.default_rng(20)
    latent = rng.standard_normal((N, 3))
    sources = []
    for i in range(K):
        sources.append(str(folder / f"m{i}.npy"))
        np.save(sources[-1], latent + (0.5 + 0.3 * i) * rng.standard_normal((N, 3)))
    store = folder / "pristine"
    _sweep(sources, store)
    targets = np.asarray(fastrsa.rdms(rng.standard_normal((2, N, 4))), dtype=np.float64)
    want = _reads(store, targets)
    assert not any(isinstance(v, tuple) for v in want.values())
    return folder, sources, targets, store, want


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("kind", list(KINDS))
def test_damage_is_refused_by_name_or_harmless_and_one_rerun_repairs_it(
    finished, tmp_path, kind, how
):
    folder, sources, targets, pristine, want = finished
    store = tmp_path / "s"
    shutil.copytree(pristine, store)
    file, named, (rdms_redone, tiles_redone) = KINDS[kind]
    if "{m1}" in file:
        file = file.format(m1=open_store(store).layer_info("default")["keys"]["m1"])
    if how == "truncate" and kind == "rdm-marker":  # an empty marker: truncated, it is the same
        rdms_redone = 0
    _damage(store / file, how)

    got = _reads(store, targets)
    for name, value in got.items():
        if isinstance(value, tuple):  # refused: one line, naming the damaged file or unit
            assert "\n" not in value[1].strip() and named in value[1], (name, value[1])
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, want[name], err_msg=name)
        else:
            assert value == want[name], name

    again = _sweep(sources, store)  # one run of the same sweep
    assert (again.summary.rdms_computed, again.summary.tiles_computed) == (
        rdms_redone,
        tiles_redone,
    )
    repaired = _reads(store, targets)
    for name, value in repaired.items():
        assert not isinstance(value, tuple), (name, value)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, want[name], err_msg=name)
        else:
            assert value == want[name], name
    report = open_store(store).verify()
    assert report.clean and not report.damage, report.lines()
    assert _cli("sweep", "--verify", store)[0] == 0


def test_a_flipped_bit_is_found_by_verify_and_repaired(finished, tmp_path):
    """Damage that keeps a chunk's size: a sweep's quick check cannot see it; --verify (and any
    read) does, and unmarks it, so the next run recomputes exactly that."""
    _, sources, _, pristine, _ = finished
    store = tmp_path / "s"
    shutil.copytree(pristine, store)
    chunk = store / "ranks" / "0" / "c" / "3" / "0"
    data = bytearray(chunk.read_bytes())
    data[7] ^= 0x01
    chunk.write_bytes(bytes(data))
    code, out, _ = _cli("sweep", "--status", store, "--verify")
    assert code == 1 and "ranks/0/c/3/0: corrupt (its checksum does not match)" in out
    assert "source 'm3'" in out and "would compute: layer 'default', RDMs of ['m3']" in out
    again = _sweep(sources, store)
    assert (again.summary.rdms_computed, again.summary.tiles_computed) == (1, 0)
    assert open_store(store).verify().clean
    np.testing.assert_array_equal(open_store(store).similarity(), open_store(pristine).similarity())


def test_index_and_copy_both_damaged_is_refused_naming_them(finished, tmp_path):
    _, sources, _, pristine, _ = finished
    store = tmp_path / "s"
    shutil.copytree(pristine, store)
    (store / "fastrsa.json").write_bytes(b'{"format": "fastrsa-sweep", "version": 1}')
    (store / "fastrsa.copy.json").unlink()
    with pytest.raises(UserError, match=r"fastrsa.json is damaged: its field 'n' is missing.*"):
        open_store(store)
    code, _, err = _cli("sweep", "--status", store)
    assert code == 2 and "field 'n'" in err and "fastrsa.copy.json is missing" in err
    (store / "fastrsa.json").unlink()
    with pytest.raises(UserError, match="index fastrsa.json and the index's copy .* missing"):
        open_store(store)


def _refusals(finished, tmp_path):
    """(name, how to make the store refuse, the sweep's keyword arguments) of refused runs."""
    folder, sources, _, _, _ = finished
    other_n = str(folder / "n9.npy")
    np.save(other_n, np.random.default_rng(1).standard_normal((N + 1, 3)))
    other = str(folder / "other.npy")
    np.save(other, np.random.default_rng(2).standard_normal((N, 3)))

    def truncated(store: Path) -> None:
        for name in ("fastrsa.json", "fastrsa.copy.json"):
            (store / name).write_bytes((store / name).read_bytes()[:40])

    return [
        ("other metric", None, {"sources": sources, "metric": "cosine"}, "metric"),
        ("other n", None, {"sources": [other_n]}, "images, not"),
        ("truncated index", truncated, {"sources": sources}, "not valid JSON"),
        ("label of another source", None, {"sources": {"m0": other}}, "label 'm0' in layer"),
    ]


def test_a_refused_run_changes_no_file(finished, tmp_path):
    for name, prepare, kw, match in _refusals(finished, tmp_path):
        store = tmp_path / name.replace(" ", "-")
        shutil.copytree(finished[3], store)
        if prepare is not None:
            prepare(store)
        (store / ".lock").write_bytes(b"")  # a run that takes the lock writes its holder there
        before = _hashes(store)
        sources = kw.pop("sources")
        with pytest.raises(UserError, match=match):
            _sweep(sources, store, **kw)
        assert _hashes(store) == before, name


def test_other_images_refused_without_changing_a_file(tmp_path):
    rng = np.random.default_rng(3)
    feats = str(tmp_path / "f.npy")
    np.save(feats, rng.standard_normal((N, 3)))
    images = (rng.random((N, 8, 8, 3)) * 255).astype(np.uint8)
    _sweep([feats], tmp_path / "s", images=images)
    (tmp_path / "s" / ".lock").write_bytes(b"")
    before = _hashes(tmp_path / "s")
    with pytest.raises(UserError, match="another image set"):
        _sweep([feats], tmp_path / "s", images=images[::-1].copy())
    assert _hashes(tmp_path / "s") == before


def test_store_compare_names_nan_targets(finished):
    store = open_store(finished[3])
    bad = np.array(finished[2])
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"^targets holds NaN or Inf \(first at index \(1, 3\)\)"):
        store.compare(bad)


def test_store_that_is_a_file_says_so(finished, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = _cli("sweep", "--store", tmp_path / "f", "--features", finished[1][0])
    assert code == 2 and "--store" in err and "is a file, not a store folder" in err
    with pytest.raises(UserError, match="is a file, not a store folder"):
        fastrsa.sweep(finished[1][:1], store=str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "x"


def test_cli_reads_of_a_deleted_tile_refuse_and_a_rerun_repairs(finished, tmp_path):
    """The issue's case: compare --store and taxonomy --store printed NaN and exited 0, and a
    re-run did not recompute the tile (its marker still said done)."""
    _, sources, _, pristine, _ = finished
    store = tmp_path / "s"
    shutil.copytree(pristine, store)
    (store / "similarity" / "0" / "spearman" / "c" / "0" / "1").unlink()
    code, out, err = _cli("compare", "--store", store)
    assert code == 2 and "nan" not in out and err.count("\n") == 1
    assert "spearman similarity tile 0,1 of layer 'default'" in err
    assert "similarity/0/spearman/c/0/1 is missing" in err
    code, out, err = _cli("taxonomy", "--clusters", "2", "--out", tmp_path / "tx", "--store", store)
    assert code == 2 and "nan" not in out and err.count("\n") == 1
    assert "spearman similarity of layer 'default' is not computed" in err and "lacks 0,1" in err
    code, out, _ = _cli("sweep", "--verify", store)
    assert code == 1 and "would compute: layer 'default', spearman tiles 0,1" in out
    assert _sweep(sources, store).summary.tiles_computed == 1
    code, out, _ = _cli("compare", "--store", store)
    assert code == 0 and out == _cli("compare", "--store", pristine)[1]
    assert _cli("taxonomy", "--store", store, "--out", tmp_path / "tx")[0] == 0


def test_a_url_store_is_checked_and_mended_the_same(finished):
    """At an fsspec URL (memory://): chunks read through the files layer, sizes by one listing."""
    import fsspec

    _, sources, _, pristine, _ = finished
    url = "memory://fastrsa-damage/s"
    fs = fsspec.filesystem("memory")
    fs.rm("/fastrsa-damage", recursive=True) if fs.exists("/fastrsa-damage") else None
    _sweep(sources, url)
    fs.rm("/fastrsa-damage/s/ranks/0/c/1/0")
    fs.pipe_file("/fastrsa-damage/s/similarity/0/spearman/c/1/1", b"garbage")
    with pytest.raises(UserError, match=r"tile 1,1 .*/c/1/1 is the wrong size \(7 bytes"):
        open_store(url).similarity()
    with pytest.raises(UserError, match=r"ranks chunk of 'm1' .* is missing \(ranks/0/c/1/0\)"):
        open_store(url).compare(np.asarray(open_store(pristine).rdms()))
    again = _sweep(sources, url)
    assert (again.summary.rdms_computed, again.summary.tiles_computed) == (1, 1)
    assert open_store(url).verify().clean
    np.testing.assert_array_equal(open_store(url).similarity(), open_store(pristine).similarity())
