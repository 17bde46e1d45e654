"""The sweep store and its tiles (fastrsa/sweeps/store.py, tiles.py): tiled all-pairs equal to
fastrsa.compare for every method and block size, content keys, refusals, corrupt chunks,
the lock, full disks and fsspec URLs. Sources here are in-memory RDMs (a minimal source)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from helpers import CPU_BACKENDS

import fastrsa
from fastrsa.errors import UserError
from fastrsa.sweeps.blocks import TILE_METHODS, plan, tile_rows
from fastrsa.sweeps.run import RDMUnit, _register
from fastrsa.sweeps.storage import LocalFiles, holder
from fastrsa.sweeps.store import create_or_open, open_store
from fastrsa.sweeps.tiles import tile_units

N = 12


class MemorySource:
    """The source contract (fastrsa/sweeps/sources.py) over RDMs held in memory."""

    kind = "rdms"
    needs_images = False

    def __init__(self, label: str, rdm: np.ndarray, layer: str = "default"):
        self.label, self.rdm, self.layer = label, rdm, layer

    def describe(self) -> dict:
        return {"kind": "rdms", "path": "memory"}

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(self.rdm.tobytes()).hexdigest()

    def layer_names(self, layers):
        return [self.layer]

    def n_images(self):
        return N

    def check(self, layers, n):
        pass

    def rdms(self, layers, images, metric, backend, memory, spill_dir, **kw):
        yield self.layer, self.rdm


def _rdms(rng, count, dtype="float32"):
    return np.asarray(fastrsa.rdms(rng.standard_normal((count, N, 5)).astype(dtype)))


def _filled(path, rdms, labels=None, b=None):
    """A store holding `rdms` (computed through RDMUnits), block size b."""
    labels = labels or [f"m{i}" for i in range(len(rdms))]
    srcs = [MemorySource(label, r) for label, r in zip(labels, rdms, strict=True)]
    st = create_or_open(str(path), N, "correlation", None)
    plan_, touched = _register(st, srcs, None, {s.label: s.fingerprint() for s in srcs}, None)
    for layer in touched:
        st.allocate(layer)
        if b is not None and not st.index["layers"][layer]["tile_rows"]:
            st.index["layers"][layer]["tile_rows"] = b
    st.save_index()
    done = st.done_rdms("default")
    for s in srcs:
        todo = [item for item in plan_[s.label] if item[2] not in done]
        if todo:
            RDMUnit(st.path, s, todo).run()
    return st


def _tiles(st, method, memory=1 << 20, backend="auto"):
    units, reused = tile_units(st, "default", method, backend, memory)
    for u in units:
        u.run()
    return len(units), reused


@pytest.mark.parametrize("method", TILE_METHODS)
@pytest.mark.parametrize("count,b", [(7, 3), (7, 1), (7, 7), (7, 50), (3, 2)])
def test_tiles_equal_compare(tmp_path, rng, method, count, b):
    rdms = _rdms(rng, count)
    st = _filled(tmp_path / "s", rdms, b=b)
    _tiles(st, method)
    got = open_store(st.path).similarity(method=method)
    want = np.asarray(fastrsa.compare(rdms, method=method), dtype=np.float64)
    assert got.shape == (count, count) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
    assert np.array_equal(got, got.T) and np.all(np.diag(got) == 1.0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("method", ["spearman", "cosine"])
def test_tiles_equal_compare_on_every_backend(tmp_path, rng, backend, method):
    rdms = _rdms(rng, 5)
    st = _filled(tmp_path / "s", rdms, b=2)
    _tiles(st, method, backend=backend)
    got = open_store(st.path).similarity(method=method)
    want = np.asarray(fastrsa.compare(rdms, method=method, backend=backend), dtype=np.float64)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_tiles_on_the_gpu_equal_compare(tmp_path, rng, backend):
    """The tile stage on a GPU backend (a unit asks Ray for a GPU) equals compare there."""
    from fastrsa.sweeps.tiles import uses_gpu

    rdms = _rdms(rng, 9)
    st = _filled(tmp_path / "s", rdms, b=4)
    units, _ = tile_units(st, "default", "spearman", backend, 1 << 24)
    assert all(u.gpu for u in units) and uses_gpu(backend)
    for u in units:
        u.run()
    want = np.asarray(fastrsa.compare(rdms, backend=backend), dtype=np.float64)
    np.testing.assert_allclose(open_store(st.path).similarity(), want, atol=2e-6, rtol=0)


def test_float64_rdms_and_ties(tmp_path, rng):
    """float64 layers stay float64; RDMs with many ties (rounded) rank exactly."""
    rdms = np.round(_rdms(rng, 5, "float64"), 1)
    st = _filled(tmp_path / "s", rdms, b=2)
    _tiles(st, "spearman")
    got = open_store(st.path).similarity()
    np.testing.assert_allclose(got, fastrsa.compare(rdms), atol=1e-12, rtol=0)
    assert open_store(st.path).rdms().dtype == np.float64


def test_rdm_view_is_lazy_and_labelled(tmp_path, rng):
    rdms = _rdms(rng, 4)
    st = open_store(_filled(tmp_path / "s", rdms).path)
    view = st.rdms()
    assert view.shape == (4, N * (N - 1) // 2) and view.labels == ["m0", "m1", "m2", "m3"]
    assert np.array_equal(view["m2"], rdms[2]) and np.array_equal(view[1:3], rdms[1:3])
    assert np.array_equal(view[[3, 0]], rdms[[3, 0]]) and np.array_equal(view[-1], rdms[3])
    assert np.array_equal(np.asarray(view), rdms)
    with pytest.raises(KeyError, match="nope"):
        view["nope"]
    with pytest.raises(IndexError):
        view[4]


def test_added_sources_reuse_finished_tiles(tmp_path, rng):
    rdms = _rdms(rng, 9)
    st = _filled(tmp_path / "s", rdms[:6], b=3)
    assert _tiles(st, "spearman") == (3, 0)  # blocks {0,1,2} {3,4,5}
    st = _filled(tmp_path / "s", rdms, labels=[f"m{i}" for i in range(9)])
    computed, reused = _tiles(st, "spearman")
    assert (computed, reused) == (3, 3)  # only tiles touching the new block {6,7,8}
    got = open_store(st.path).similarity()
    np.testing.assert_allclose(got, fastrsa.compare(rdms), atol=2e-6, rtol=0)
    assert _tiles(open_store(st.path), "spearman") == (0, 6)  # a re-run computes nothing


def test_partial_last_block_recomputed_when_it_grows(tmp_path, rng):
    rdms = _rdms(rng, 5)
    st = _filled(tmp_path / "s", rdms[:4], b=3)  # blocks {0,1,2} {3}
    _tiles(st, "pearson")
    st = _filled(tmp_path / "s", rdms)  # {3} became {3,4}: its tiles' keys changed
    assert _tiles(st, "pearson") == (2, 1)
    np.testing.assert_allclose(
        open_store(st.path).similarity(method="pearson"),
        fastrsa.compare(rdms, method="pearson"),
        atol=2e-6,
    )


def test_similarity_not_computed_says_how(tmp_path, rng):
    st = _filled(tmp_path / "s", _rdms(rng, 3))
    with pytest.raises(ValueError, match="not computed.*fastrsa sweep"):
        open_store(st.path).similarity()
    st.index["layers"]["default"]["tile_rows"] = 1
    units, _ = tile_units(st, "default", "spearman", "auto", 1 << 20)
    units[0].run()
    with pytest.raises(ValueError, match=r"1 of 6 tiles done"):
        open_store(st.path).similarity()


def test_compare_one_vs_many_and_store_vs_store(tmp_path, rng):
    rdms, targets = _rdms(rng, 6), _rdms(rng, 3)
    st = open_store(_filled(tmp_path / "a", rdms).path)
    other = open_store(_filled(tmp_path / "b", targets).path)
    for method in TILE_METHODS:
        want = fastrsa.compare(targets, rdms, method=method)
        np.testing.assert_allclose(st.compare(targets, method=method), want, atol=2e-6)
        np.testing.assert_allclose(st.compare(other, method=method), want, atol=2e-6)
    # blocks smaller than the inputs (a tiny budget) give the same numbers
    tiny = st.compare(targets, memory=1)
    np.testing.assert_allclose(tiny, fastrsa.compare(targets, rdms), atol=2e-6)
    with pytest.raises(ValueError, match="different image sets"):
        st.compare(np.ones((2, 10)))


def test_smaller_budget_later_computes_tiles_in_pieces(tmp_path, rng):
    """Blocks sized by a first run's budget; a later run with a tiny budget (another method)
    computes each tile in pieces that fit it, with the same numbers."""
    rdms = _rdms(rng, 7)
    st = _filled(tmp_path / "s", rdms, b=4)
    _tiles(st, "spearman")
    _tiles(open_store(st.path), "pearson", memory=1)
    for method in ("spearman", "pearson"):
        got = open_store(st.path).similarity(method=method)
        want = fastrsa.compare(rdms, method=method)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
        assert np.array_equal(got, got.T) and np.all(np.diag(got) == 1.0)


def test_tile_rows_fit_the_budget():
    m = 124_750
    b = tile_rows(2 << 30, m, 4, 10_000)
    assert 2 * b * m * (4 + 8) + 8 * b * b <= 2 << 30 and b > 100
    assert tile_rows(1, m, 4, 10) == 1 and tile_rows(1 << 40, m, 4, 10) == 10
    keys = [str(i) for i in range(5)]
    assert [(i, j) for i, j, _ in plan(keys, 2, "spearman")] == [
        (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)
    ]  # fmt: skip
    assert plan(keys, 2, "spearman")[0][2] != plan(keys, 2, "pearson")[0][2]


def test_other_images_metric_or_n_refused(tmp_path):
    create_or_open(str(tmp_path / "s"), N, "correlation", "images-a")
    with pytest.raises(UserError, match="13 images, not|12 images, not 13"):
        create_or_open(str(tmp_path / "s"), 13, "correlation", "images-a")
    with pytest.raises(UserError, match="metric 'correlation', not 'cosine'"):
        create_or_open(str(tmp_path / "s"), N, "cosine", "images-a")
    with pytest.raises(UserError, match="another image set"):
        create_or_open(str(tmp_path / "s"), N, "correlation", "images-b")
    create_or_open(str(tmp_path / "s"), N, "correlation", None)  # files without images: fine


def test_a_label_never_changes_source(tmp_path, rng):
    _filled(tmp_path / "s", _rdms(rng, 2))
    with pytest.raises(UserError, match="label 'm0' in layer 'default' holds the results of"):
        _filled(tmp_path / "s", _rdms(rng, 1))


def test_not_a_store(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_store(tmp_path / "none")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a store folder"):
        open_store(tmp_path / "f")
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="not a fastrsa sweep store"):
        open_store(tmp_path / "d")
    (tmp_path / "d" / "fastrsa.json").write_text("{nope")
    with pytest.raises(UserError, match="fastrsa.json is damaged: it is not valid JSON"):
        open_store(tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "precious.txt").write_text("x")
    with pytest.raises(UserError, match="not a fastrsa store"):
        create_or_open(str(tmp_path / "e"), N, "correlation", None)


def test_corrupt_chunk_named_and_recomputed(tmp_path, rng):
    rdms = _rdms(rng, 3)
    st = _filled(tmp_path / "s", rdms)
    chunk = tmp_path / "s" / "ranks" / "0" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0xFF
    chunk.write_bytes(bytes(data))
    st.index["layers"]["default"]["tile_rows"] = 3
    units, _ = tile_units(st, "default", "spearman", "auto", 1 << 20)
    with pytest.raises(UserError, match="chunk of 'm1' in layer 'default' is corrupt"):
        units[0].run()
    assert "m1" not in [
        lab for lab, key in st.index["layers"]["default"]["keys"].items()
        if key in open_store(st.path).done_rdms("default")
    ]  # fmt: skip
    st = _filled(tmp_path / "s", rdms)  # the next run recomputes it
    _tiles(st, "spearman")
    np.testing.assert_allclose(open_store(st.path).similarity(), fastrsa.compare(rdms), atol=2e-6)


def test_lock_refuses_a_second_writer(tmp_path):
    files = LocalFiles(tmp_path / "s")
    with files.lock(holder()):
        with pytest.raises(UserError, match=f"being written by another sweep \\(pid {os.getpid()}"):
            with LocalFiles(tmp_path / "s").lock(holder()):
                pass
    with files.lock(holder()):  # released at the end
        pass


def test_full_disk_is_one_clear_error(tmp_path, rng, monkeypatch):
    st = _filled(tmp_path / "s", _rdms(rng, 2))
    st.index["layers"]["default"]["tile_rows"] = 2
    units, _ = tile_units(st, "default", "spearman", "auto", 1 << 20)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalFiles, "write", full)
    with pytest.raises(UserError, match="no space left.*nothing was half written"):
        units[0].run()
    monkeypatch.undo()
    assert open_store(st.path).missing_tiles("default", "spearman")  # no marker written


def test_fsspec_url_store(rng):
    rdms = _rdms(rng, 4)
    url = f"memory://fastrsa-test-{rng.integers(1 << 30)}/s"
    st = _filled(url, rdms, b=3)
    _tiles(st, "spearman")
    got = open_store(url).similarity()
    np.testing.assert_allclose(got, fastrsa.compare(rdms), atol=2e-6)
    with st.files.lock(holder()):
        with pytest.raises(UserError, match="delete .*lock.json"):
            with open_store(url).files.lock(holder()):
                pass
