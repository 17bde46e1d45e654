"""fastrsa.sweep end to end: results equal the in-memory path, re-runs reuse, kill -9 at random
moments then resume gives the uninterrupted result, Ray (with a worker killed) equals local,
the lock, and bad input refused before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastrsa
from fastrsa.errors import UserError
from fastrsa.sweeps.storage import LocalFiles, holder
from fastrsa.sweeps.store import open_store

N = 10


def _feature_files(folder, rng, count, dtype="float32"):
    """count .npy feature files (N, d_i) of different widths -> ({label: path}, {label: array})."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, arrays = {}, {}
    for i in range(count):
        x = rng.standard_normal((N, 3 + i % 4)).astype(dtype)
        path = folder / f"m{i:02d}.npy"
        np.save(path, x)
        paths[f"m{i:02d}"], arrays[f"m{i:02d}"] = path, x
    return paths, arrays


def _in_memory(arrays, method="spearman"):
    rdms = np.stack([np.asarray(fastrsa.rdms(x)) for x in arrays.values()])
    return rdms, np.asarray(fastrsa.compare(rdms, method=method), dtype=np.float64)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
def test_sweep_of_feature_files_equals_in_memory(tmp_path, rng, method):
    paths, arrays = _feature_files(tmp_path / "f", rng, 5)
    store = fastrsa.sweep(list(paths.values()), store=tmp_path / "s", method=method)
    rdms, want = _in_memory(arrays, method)
    assert store.labels == list(paths) and store.layers == ["default"]
    np.testing.assert_allclose(np.asarray(store.rdms()), rdms, atol=1e-6, rtol=0)
    np.testing.assert_allclose(store.similarity(method=method), want, atol=2e-6, rtol=0)
    assert store.summary.rdms_computed == 5 and store.summary.tiles_computed >= 1


def test_rerun_reuses_and_added_source_extends(tmp_path, rng):
    paths, arrays = _feature_files(tmp_path / "f", rng, 6)
    first = dict(list(paths.items())[:4])
    fastrsa.sweep(first, store=tmp_path / "s", memory="1MB")
    again = fastrsa.sweep(first, store=tmp_path / "s", memory="1MB")
    assert again.summary.rdms_computed == 0 and again.summary.tiles_computed == 0
    assert again.summary.rdms_reused == 4 and again.summary.tiles_reused >= 1
    more = fastrsa.sweep(paths, store=tmp_path / "s", memory="1MB")
    assert more.summary.rdms_computed == 2 and more.summary.rdms_reused == 4
    np.testing.assert_allclose(more.similarity(), _in_memory(arrays)[1], atol=2e-6)


def test_spearman_then_pearson_on_one_store(tmp_path, rng):
    paths, arrays = _feature_files(tmp_path / "f", rng, 3)
    fastrsa.sweep(paths, store=tmp_path / "s")
    store = fastrsa.sweep(paths, store=tmp_path / "s", method="pearson")
    assert store.summary.rdms_computed == 0
    np.testing.assert_allclose(
        store.similarity(method="pearson"), _in_memory(arrays, "pearson")[1], atol=2e-6
    )
    np.testing.assert_allclose(store.similarity(), _in_memory(arrays)[1], atol=2e-6)
    assert store.status()["default"]["tiles"] == {"spearman": (1, 1), "pearson": (1, 1)}


def test_a_label_takes_one_feature_file_per_layer(tmp_path, rng):
    """Features saved per layer: the same labels, one file set per layer, one store."""
    low, low_arrays = _feature_files(tmp_path / "low", rng, 3)
    high, high_arrays = _feature_files(tmp_path / "high", rng, 3)
    fastrsa.sweep(low, layers="block1", store=tmp_path / "s")
    store = fastrsa.sweep(high, layers="block4", store=tmp_path / "s")
    assert store.layers == ["block1", "block4"] and store.labels == list(low)
    np.testing.assert_allclose(store.similarity("block1"), _in_memory(low_arrays)[1], atol=2e-6)
    np.testing.assert_allclose(store.similarity("block4"), _in_memory(high_arrays)[1], atol=2e-6)
    assert set(store.metadata["sources"]["m00"]) == {"block1", "block4"}
    with pytest.raises(UserError, match="label 'm00' in layer 'block1' holds the results"):
        fastrsa.sweep(high, layers="block1", store=tmp_path / "s")
    with pytest.raises(ValueError, match="layers"):
        store.similarity()  # two layers: say which


def test_keep_features(tmp_path, rng):
    paths, arrays = _feature_files(tmp_path / "f", rng, 3)
    store = fastrsa.sweep(paths, store=tmp_path / "s", keep_features=True, batch_size=4)
    for label, x in arrays.items():
        assert np.array_equal(store.features(label)[:], x)
    bare = fastrsa.sweep(paths, store=tmp_path / "bare")
    with pytest.raises(ValueError, match="no features kept for 'm00'"):
        bare.features("m00")
    with pytest.raises(ValueError, match="no label 'nope'"):
        bare.features("nope")


def test_other_metric_refused(tmp_path, rng):
    paths, _ = _feature_files(tmp_path / "f", rng, 3)
    fastrsa.sweep(paths, store=tmp_path / "s")
    with pytest.raises(UserError, match="metric 'correlation', not 'cosine'"):
        fastrsa.sweep(paths, store=tmp_path / "s", metric="cosine")


def test_bad_source_fails_before_any_work(tmp_path, rng):
    paths, _ = _feature_files(tmp_path / "f", rng, 2)
    with pytest.raises((ValueError, FileNotFoundError), match="missing.npy"):
        fastrsa.sweep([*paths.values(), tmp_path / "missing.npy"], store=tmp_path / "s")
    np.save(tmp_path / "wrong.npy", np.zeros((N + 1, 3), np.float32))
    with pytest.raises(ValueError, match="wrong"):
        fastrsa.sweep([*paths.values(), tmp_path / "wrong.npy"], store=tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing was started


def test_bad_arguments(tmp_path, rng):
    paths, _ = _feature_files(tmp_path / "f", rng, 2)
    for kwargs, match in [
        ({"method": "nope"}, "method must be one of"),
        ({"metric": "nope"}, "metric must be one of"),
        ({"executor": "dask"}, "executor must be one of"),
        ({"memory": "lots"}, "memory"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            fastrsa.sweep(paths, store=tmp_path / "s", **kwargs)
    with pytest.raises(ValueError, match="sources is empty"):
        fastrsa.sweep([], store=tmp_path / "s")


def test_second_writer_gets_the_lock_error(tmp_path, rng):
    paths, _ = _feature_files(tmp_path / "f", rng, 2)
    with LocalFiles(tmp_path / "s").lock(holder()):
        with pytest.raises(UserError, match="being written by another sweep"):
            fastrsa.sweep(paths, store=tmp_path / "s")


_KILLED_SWEEP = """
import sys, fastrsa
paths = sys.argv[2:]
fastrsa.sweep(paths, store=sys.argv[1], memory="5kB", progress=False)
"""


def _sweep_process(script, store, paths):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(script), str(store), *map(str, paths)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _markers(store) -> int:
    """Units done so far: the done-markers under STORE/done."""
    return sum(len(files) for _, _, files in os.walk(store / "done"))


def test_kill_at_random_moments_then_resume(tmp_path, rng):
    """SIGKILL a sweep at random points of its work (after a random number of finished units),
    three times, then let it finish: the store opens after every kill, every RDM it marks done
    is right, and the final similarity equals the in-memory one."""
    paths, arrays = _feature_files(tmp_path / "f", rng, 24)
    rdms, want = _in_memory(arrays)
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(_KILLED_SWEEP))
    full = _sweep_process(script, tmp_path / "s", paths.values())
    assert full.wait(timeout=120) == 0, full.stdout.read().decode()
    total = _markers(tmp_path / "s")
    np.testing.assert_allclose(open_store(tmp_path / "s").similarity(), want, atol=2e-6)
    store = tmp_path / "s2"
    for target in sorted(rng.integers(1, total, size=3)):
        proc = _sweep_process(script, store, paths.values())
        while _markers(store) < target and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed = open_store(store)  # never corrupt: opens, and every done row is right
        assert _markers(store) < total  # killed mid-work
        view = killed.rdms()
        for r in range(len(view)):
            if not killed.missing_rows("default", [r]):
                np.testing.assert_allclose(view[r], rdms[r], atol=1e-6)
    finish = _sweep_process(script, store, paths.values())
    assert finish.wait(timeout=120) == 0, finish.stdout.read().decode()
    assert _markers(store) == total
    np.testing.assert_allclose(open_store(store).similarity(), want, atol=2e-6)


def test_ray_with_a_killed_worker_equals_local(tmp_path, rng, ray_cluster, monkeypatch):
    from fastrsa.sweeps.executors import KILL_ONCE_ENV

    paths, arrays = _feature_files(tmp_path / "f", rng, 8)
    local = fastrsa.sweep(paths, store=tmp_path / "local", memory="5kB")
    flag = tmp_path / "kill-once"
    flag.write_text("")
    monkeypatch.setenv(KILL_ONCE_ENV, str(flag))
    remote = fastrsa.sweep(paths, store=tmp_path / "ray", memory="5kB", executor="ray")
    assert not flag.exists()  # a worker really died, and its unit was retried
    assert remote.summary.rdms_computed == 8 and remote.summary.tiles_computed > 1
    np.testing.assert_allclose(remote.similarity(), local.similarity(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.asarray(remote.rdms()), np.asarray(local.rdms()), atol=0)
