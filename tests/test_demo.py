"""The miniature Taskonomy: scene generator, shipped encoders, and `fastrsa demo` end to end."""

import json
from pathlib import Path

import numpy as np
import pytest

from fastrsa.cli import main
from fastrsa.scenes import KINDS, TASKS, make_scenes
from fastrsa.support import adjusted_rand_index

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "taskonomy"


def test_scenes_are_deterministic():
    a, b = make_scenes(6, 32, seed=3), make_scenes(6, 32, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    for task in TASKS:
        np.testing.assert_array_equal(a.targets[task], b.targets[task])
    assert not np.array_equal(a.images, make_scenes(6, 32, seed=4).images)


def test_every_task_has_the_right_shape_and_range():
    s = make_scenes(12, 48, seed=1)
    assert s.images.shape == (12, 3, 48, 48) and s.images.dtype == np.float32
    assert s.images.min() >= -1 and s.images.max() <= 1 and s.images.std() > 0.1
    assert s.noisy.shape == s.images.shape and not np.array_equal(s.noisy, s.images)
    assert set(s.targets) == set(TASKS) and set(KINDS.values()) == {"2D", "3D", "semantic"}
    for task, (_, target, channels) in TASKS.items():
        t = s.targets[task]
        if target == "class":
            assert t.shape == (12,) and t.min() >= 0 and t.max() < channels
        elif target == "labels":
            assert t.shape == (12, 48, 48) and t.min() >= 0 and t.max() < channels
            assert len(np.unique(t)) > 1
        else:
            assert t.shape == (12, channels, 48, 48) and np.isfinite(t).all() and t.std() > 0
    for task in ("edge2d", "keypoint2d", "edge3d", "reshade"):
        assert s.targets[task].min() >= 0 and s.targets[task].max() <= 1
    np.testing.assert_allclose(np.linalg.norm(s.targets["normal"], axis=1), 1, atol=1e-5)
    assert set(np.unique(s.targets["edge3d"])) <= {0.0, 1.0}


def test_refuses_bad_sizes():
    with pytest.raises(ValueError, match="size >= 16"):
        make_scenes(3, 8)


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.5714285714)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand_index(["a", "a", "a", "a"], [0, 1, 2, 3]) == pytest.approx(0.0)


ort = pytest.importorskip("onnxruntime")


def test_shipped_encoders_load_and_give_documented_features():
    from fastrsa.demo import shipped_models, task_kinds
    from fastrsa.features import extract

    models = shipped_models()
    assert list(models) == list(TASKS) and task_kinds() == KINDS
    record = json.loads((next(iter(models.values())).parent / "training.json").read_text())
    for key in ("seed", "n_train", "epochs", "total_seconds"):
        assert key in record
    assert all("final_loss" in t and "seconds" in t for t in record["tasks"].values())
    images = make_scenes(5, record["image_size"], seed=7).images
    feats = extract(models, images, layers=["block4", "compressed"], progress=False)
    assert feats.stack("block4").shape == (11, 5, 64 * 4 * 4)
    assert feats.stack("compressed").shape == (11, 5, 8 * 4 * 4)


def test_demo_end_to_end(tmp_path, capsys):
    from fastrsa.demo import run_demo

    res = run_demo(n_images=40, out_dir=tmp_path / "demo", progress=False)
    assert -1 <= res.ari <= 1 and res.max_abs_diff < 1e-4
    assert sorted(res.taxonomy.labels) == sorted(TASKS)
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["ari"] == pytest.approx(res.ari) and set(saved["clusters"]) == set(TASKS)
    assert (tmp_path / "demo" / "taxonomy.png").stat().st_size > 0
    assert main(["demo", "--images", "40", "--no-reference", "--out", str(tmp_path / "d2")]) == 0
    out = capsys.readouterr().out
    assert "adjusted Rand index" in out and str(tmp_path / "d2") in out


def test_demo_real_data_folder(tmp_path, capsys, rng):
    folder = tmp_path / "real"
    folder.mkdir()
    latent = rng.standard_normal((20, 5))
    from scipy.spatial.distance import pdist

    np.savez(
        folder / "rdms.npz",
        **{f"t{i}": pdist(latent + rng.standard_normal((20, 5))) for i in range(5)},
    )
    assert (
        main(
            ["demo", "--real-data", str(folder), "--clusters", "2", "--out", str(tmp_path / "out")]
        )
        == 0
    )
    assert "cluster 1" in capsys.readouterr().out
    assert (tmp_path / "out" / "rdms" / "taxonomy.json").is_file()
    assert main(["demo", "--real-data", str(tmp_path / "nope")]) == 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/taskonomy not present")
def test_demo_on_shared_taskonomy(tmp_path, capsys):
    assert main(["demo", "--real-data", str(SHARED), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rdms_train.npz" in out and "top-1/3/5 = 10/14/16" in out
