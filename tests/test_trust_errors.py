"""Errors that name what the user wrote (issue 22): an unreachable Ray address fails fast naming
it, squareform names a NaN and refuses booleans, evaluate_transfer names a bad `aliases`, and
`fastrsa demo` names its numeric flags.

The Ray tests only ever connect to 127.0.0.1 on a closed port (1); they skip without ray."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastrsa
from fastrsa.cli import main
from fastrsa.demo import run_demo, run_real_data
from fastrsa.errors import UserError
from fastrsa.sweeps.executors import RAY_CONNECT_TIMEOUT, check_ray_address, run_units
from fastrsa.transfer import evaluate_transfer

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="needs ray (pip install fastrsa[ray])")
CLOSED = "127.0.0.1:1"  # nothing listens on port 1 of this machine
BOUND_S = 30.0  # generous: a refused connection takes milliseconds; Ray's own retries minutes


# ----------------------------------------------------------------------------- Ray address


@pytest.fixture
def unconnected(monkeypatch):
    """As if this process were not connected to Ray (a cluster another test module started may
    still be up): run_units then checks the address and would call ray.init."""
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return ray


def _features(tmp_path, k=3, n=8, d=4):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(k):
        path = tmp_path / f"m{i}.npy"
        np.save(path, rng.standard_normal((n, d)))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("address", [CLOSED, f"ray://{CLOSED}"])
def test_check_ray_address_refuses_a_closed_port_quickly(address):
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"^address '{address}': cannot reach a Ray cluster"):
        check_ray_address(address)
    assert time.monotonic() - start < BOUND_S
    assert RAY_CONNECT_TIMEOUT == 10.0  # the documented default


def test_check_ray_address_names_ray_address_and_bad_forms(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", CLOSED)
    with pytest.raises(
        UserError, match=rf"RAY_ADDRESS '{CLOSED}': cannot reach .*waited at most 2"
    ):
        check_ray_address(None, timeout=2)
    monkeypatch.delenv("RAY_ADDRESS")
    for fine in (None, "auto", "local"):  # nothing to try: Ray finds or starts the cluster
        check_ray_address(fine)
    for bad in ("127.0.0.1", "host:port", "127.0.0.1:99999", ":6379", "ray://"):
        with pytest.raises(ValueError, match=r"address: expected 'host:port', 'ray://host"):
            check_ray_address(bad)
    for timeout, error in ((0, ValueError), (float("nan"), ValueError), ("5", TypeError)):
        with pytest.raises(error, match="timeout: expected a number of seconds > 0"):
            check_ray_address(CLOSED, timeout)
    with pytest.raises(ValueError, match="connect_timeout: expected a number of seconds > 0"):
        run_units([], "ray", connect_timeout=-1)


@needs_ray
def test_run_units_refuses_an_unreachable_address_before_ray_init(unconnected, monkeypatch):
    def init(*args, **kwargs):  # pragma: no cover - reached only when the check is missing
        raise AssertionError(f"ray.init was called for {kwargs.get('address')!r}")

    monkeypatch.setattr(unconnected, "init", init)
    with pytest.raises(UserError, match=rf"address '{CLOSED}': cannot reach"):
        run_units([object()], "ray", address=CLOSED, connect_timeout=5)


@needs_ray
def test_sweep_api_unreachable_address_fails_fast_naming_it(unconnected, tmp_path):
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"address '{CLOSED}': cannot reach a Ray cluster"):
        fastrsa.sweep(
            _features(tmp_path),
            store=tmp_path / "store",
            executor="ray",
            address=CLOSED,
            progress=False,
        )
    assert time.monotonic() - start < BOUND_S


@needs_ray
def test_sweep_cli_unreachable_address_fails_fast_naming_it(tmp_path):
    """In a fresh interpreter (no Ray connection of this one's), bounded by a timeout: before the
    check, this hung for minutes."""
    argv = ["sweep", "--features", *_features(tmp_path), "--store", str(tmp_path / "store")]
    argv += ["--executor", "ray", "--address", CLOSED, "--no-progress"]
    code = f"import sys; from fastrsa.cli import main; sys.exit(main({argv!r}))"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`fastrsa sweep --address {CLOSED}` still running after 90 s")
    assert time.monotonic() - start < 90
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fastrsa sweep: error: address '{CLOSED}': cannot reach a Ray"), last


# ----------------------------------------------------------------------------- squareform


def test_squareform_names_the_first_nan():
    x = np.zeros((2, 4, 4))
    x[1, 2, 0] = x[1, 0, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way
        with pytest.raises(
            ValueError, match=r"^x holds NaN \(first at index \(1, 0, 2\); 2 in all"
        ):
            fastrsa.squareform(x)
        with pytest.raises(ValueError, match=r"x holds NaN \(first at index \(1, 1\)"):
            fastrsa.squareform(np.diag([0.0, np.nan, 0.0]))
    # checks=False converts as asked; condensed -> square keeps NaN where the caller put it
    assert np.isnan(fastrsa.squareform(x, checks=False)[1]).sum() == 1
    assert np.isnan(fastrsa.squareform(np.array([0.5, np.nan, 1.0]))).sum() == 2


def test_squareform_inf_does_not_switch_the_checks_off():
    with pytest.raises(ValueError, match="not symmetric"):
        fastrsa.squareform(np.array([[0.0, np.inf], [5.0, 0.0]]))
    with pytest.raises(ValueError, match="non-zero diagonal"):
        fastrsa.squareform(np.array([[np.inf, 1.0], [1.0, 0.0]]))


def test_squareform_refuses_booleans_both_ways():
    square = ~np.eye(3, dtype=bool)
    for x, to in ((square, None), (square, "condensed"), (np.ones(3, bool), None)):
        with pytest.raises(TypeError, match=r"^x must hold real numbers .*got dtype bool$"):
            fastrsa.squareform(x, to=to)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="got dtype torch.bool"):
        fastrsa.squareform(torch.ones(3, dtype=torch.bool))
    # integers stay accepted
    np.testing.assert_array_equal(fastrsa.squareform(square.astype(np.int64)), [1, 1, 1])


def test_cli_names_the_nan_of_a_square_rdm_file(tmp_path, capsys):
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(0)
    rdms = {f"t{i}": squareform(pdist(rng.standard_normal((5, 3)))) for i in range(3)}
    rdms["t1"][0, 2] = rdms["t1"][2, 0] = np.nan
    np.savez(tmp_path / "rdms.npz", **rdms)
    assert main(["compare", str(tmp_path / "rdms.npz")]) == 2
    err = capsys.readouterr().err
    assert "array 't1'" in err and "holds NaN (first at index (0, 2)" in err, err


# ----------------------------------------------------------------------------- aliases

LABELS = ["a", "b", "c", "d"]


def _evaluation_inputs():
    rng = np.random.default_rng(2)
    sim = np.eye(4)
    sim[np.triu_indices(4, 1)] = rng.uniform(-0.5, 0.9, 6)
    sim = np.maximum(sim, sim.T)
    affinities = {(s, t): float(rng.random()) for s in "wbcd" for t in "wbcd" if s != t}
    return sim, affinities


@pytest.mark.parametrize(
    "aliases, match",
    [
        (["a", "w"], r"aliases must be a mapping \{label: its name in the affinities\} of "
         r"strings, or None; got list \['a', 'w'\]"),
        ([("a", "w")], r"; got list \[\('a', 'w'\)\]"),
        ("a=w", r"; got str 'a=w'"),
        ({"a": 3}, r"; got the entry 'a': 3 \(str: int\)"),
        ({1: "w"}, r"; got the entry 1: 'w' \(int: str\)"),
        ({"a": None}, r"; got the entry 'a': None \(str: NoneType\)"),
    ],
)  # fmt: skip
def test_evaluate_transfer_names_bad_aliases(aliases, match):
    sim, affinities = _evaluation_inputs()
    with pytest.raises(TypeError, match=match):
        evaluate_transfer(sim, LABELS, affinities, aliases=aliases)


def test_evaluate_transfer_aliases_as_any_mapping():
    from types import MappingProxyType

    sim, affinities = _evaluation_inputs()
    want = evaluate_transfer(sim, LABELS, affinities, aliases={"a": "w"})
    got = evaluate_transfer(sim, LABELS, affinities, aliases=MappingProxyType({"a": "w"}))
    assert got.n_targets == want.n_targets == 4 and got.top1 == want.top1
    assert got.mean_spearman == want.mean_spearman


# ----------------------------------------------------------------------------- demo flags


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--images", "-5"], r"--images must be >= 3 \(an RDM needs 3 images\); got -5"),
        (["--images", "2"], r"--images must be >= 3 .*; got 2"),
        (["--clusters", "0"], r"--clusters must be >= 1; got 0"),
        (["--clusters", "-2"], r"--clusters must be >= 1; got -2"),
        (["--clusters", "12"], r"--clusters must be at most 11 \(the demo's models\); got 12"),
        (["--real-data", ".", "--clusters", "0"], r"--clusters must be >= 1; got 0"),
    ],
)
def test_demo_names_its_numeric_flags(argv, match, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", *argv, "--no-reference", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(match, err), err
    assert not out.exists()  # refused before any work


def test_demo_api_checks_its_arguments_first(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"^n_images must be >= 3 .*; got -5$"):
        run_demo(n_images=-5, out_dir=out, progress=False)
    with pytest.raises(TypeError, match=r"^n_images must be an int >= 3"):
        run_demo(n_images=4.0, out_dir=out, progress=False)
    with pytest.raises(ValueError, match=r"^n_clusters must be >= 1; got 0$"):
        run_demo(n_images=5, n_clusters=0, out_dir=out, progress=False)
    with pytest.raises(ValueError, match=r"^n_clusters must be at most 11"):
        run_demo(n_images=5, n_clusters=12, out_dir=out, progress=False)
    with pytest.raises(ValueError, match=r"^layer must be one of 'block4', 'compressed'; got 'x'"):
        run_demo(n_images=5, layer="x", out_dir=out, progress=False)
    with pytest.raises(ValueError, match=r"^n_clusters must be >= 1; got 0$"):
        run_real_data(tmp_path, n_clusters=0, out_dir=out)
    assert not out.exists()
