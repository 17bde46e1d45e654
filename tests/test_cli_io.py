"""The fastrsa command, the demo and file handling (atomic writes, no pickle, clear errors)."""

import json
import os

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from fastrsa import io
from fastrsa.cli import main
from fastrsa.reference import compare_ref


def test_rdms_then_compare_files(tmp_path, rng, capsys):
    feats = {f"model{i}": rng.standard_normal((12, 7)) for i in range(3)}
    np.savez(tmp_path / "feats.npz", **feats)
    assert main(["rdms", str(tmp_path / "feats.npz"), "--out", str(tmp_path / "rdms.npz")]) == 0
    saved = io.load_arrays(tmp_path / "rdms.npz")
    assert sorted(saved) == sorted(feats)
    for key, f in feats.items():
        np.testing.assert_allclose(saved[key], pdist(f, "correlation"), atol=1e-12)
    out_json = tmp_path / "sim.json"
    assert main(["compare", str(tmp_path / "rdms.npz"), "--out", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    ref = compare_ref(np.stack([saved[k] for k in result["labels_a"]]))
    np.testing.assert_allclose(result["similarity"], ref, atol=1e-12)
    assert "model1" in capsys.readouterr().out


def test_compare_accepts_square_rdms_and_second_file(tmp_path, rng):
    from scipy.spatial.distance import squareform

    a = {f"m{i}": squareform(pdist(rng.standard_normal((9, 4)))) for i in range(2)}
    b = {"batch": np.stack([pdist(rng.standard_normal((9, 4))) for _ in range(3)])}
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    out = tmp_path / "sim.npz"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a.npz"),
                "--with",
                str(tmp_path / "b.npz"),
                "--method",
                "kendall",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = io.load_arrays(out)
    assert saved["similarity"].shape == (2, 3)
    assert list(saved["labels_b"]) == ["batch[0]", "batch[1]", "batch[2]"]


@pytest.mark.parametrize(
    "setup,args,message",
    [
        (None, ["rdms", "{d}/missing.npy", "--out", "{d}/o.npz"], "no such file"),
        ("garbage", ["rdms", "{d}/bad.npy", "--out", "{d}/o.npz"], "not a valid .npy"),
        ("nan", ["rdms", "{d}/nan.npy", "--out", "{d}/o.npz"], "NaN or Inf"),
        ("sizes", ["compare", "{d}/sizes.npz"], "different sizes"),
        ("pickle", ["rdms", "{d}/obj.npy", "--out", "{d}/o.npz"], "could not read"),
    ],
)
def test_cli_errors_exit_2_with_a_message(tmp_path, capsys, setup, args, message):
    if setup == "garbage":
        (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    elif setup == "nan":
        np.save(tmp_path / "nan.npy", np.full((4, 3), np.nan))
    elif setup == "sizes":
        np.savez(tmp_path / "sizes.npz", a=np.arange(1.0, 4.0), b=np.arange(1.0, 7.0))
    elif setup == "pickle":
        np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    code = main([a.format(d=tmp_path) for a in args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.npz").exists()


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.npz"
    io.save_npz(target, x=np.arange(3))

    def explode(f):
        f.write(b"partial")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, explode)
    np.testing.assert_array_equal(io.load_arrays(target)["x"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["result.npz"]  # no temp file left
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # like open(), not mkstemp's 0600


def test_backends_command(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "available" in out
