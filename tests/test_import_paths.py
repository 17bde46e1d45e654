"""Public names keep their import paths after the package was redesigned into layers (issue 21):
each old path gives the very object that now lives in its new home."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

# (old module, name, new module): `from OLD import NAME` is `from NEW import NAME`
MOVED = [
    ("fastrsa.rdms", "squareform", "fastrsa._condensed"),
    ("fastrsa.rdms", "n_from_condensed", "fastrsa._condensed"),
    ("fastrsa.taxonomy", "rank_sources", "fastrsa.transfer.ranking"),
    ("fastrsa.taxonomy", "Ranking", "fastrsa.transfer.ranking"),
    ("fastrsa.taxonomy", "evaluate_transfer", "fastrsa.transfer.evaluation"),
    ("fastrsa.taxonomy", "TransferEvaluation", "fastrsa.transfer.evaluation"),
    ("fastrsa.taxonomy", "TASKONOMY_ALIASES", "fastrsa.transfer.evaluation"),
    ("fastrsa.taxonomy", "load_affinities", "fastrsa.io.affinities"),
    ("fastrsa.taxonomy", "stack_rdms", "fastrsa.rdm_inputs"),
    ("fastrsa.taxonomy", "LINKAGES", "fastrsa._checks"),
    ("fastrsa.support", "LINKAGES", "fastrsa._checks"),
    ("fastrsa.support", "check_seed", "fastrsa._checks"),
    ("fastrsa.taxonomy", "adjusted_rand_index", "fastrsa.support"),
    ("fastrsa.demo", "adjusted_rand_index", "fastrsa.support"),
    ("fastrsa.sweeps.tiles", "tile_rows", "fastrsa.sweeps.blocks"),
    ("fastrsa.interop", "rdm_rows", "fastrsa.rdm_inputs"),
    ("fastrsa.io", "atomic_write", "fastrsa.io.atomic"),
    ("fastrsa.io", "save_json", "fastrsa.io.atomic"),
    ("fastrsa.io", "save_npz", "fastrsa.io.atomic"),
    ("fastrsa.io", "write_set", "fastrsa.io.file_sets"),
    ("fastrsa.io", "load_arrays", "fastrsa.io.array_files"),
    ("fastrsa.io", "load_rdms", "fastrsa.io.rdm_files"),
    ("fastrsa.io", "rdms_from_arrays", "fastrsa.io.rdm_files"),
    ("fastrsa.stats", "permutation_test", "fastrsa.stats.permutation"),
    ("fastrsa.stats", "PermutationResult", "fastrsa.stats.permutation"),
    ("fastrsa.stats", "bootstrap", "fastrsa.stats.bootstrap"),
    ("fastrsa.stats", "BootstrapResult", "fastrsa.stats.bootstrap"),
    ("fastrsa.stats", "bootstrap_first_row", "fastrsa.stats.bootstrap"),
    ("fastrsa.features", "load_images", "fastrsa.images"),
    ("fastrsa.features", "image_paths", "fastrsa.images"),
    ("fastrsa.features", "providers", "fastrsa.onnx"),
    ("fastrsa.sweeps", "FeatureSource", "fastrsa.sweeps.file_sources"),
    ("fastrsa.sweeps", "RDMSource", "fastrsa.sweeps.file_sources"),
    ("fastrsa.sweeps", "RDMView", "fastrsa.sweeps.rdm_view"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=lambda v: str(v))
def test_an_old_path_gives_the_same_object(old, name, new):
    assert getattr(importlib.import_module(old), name) is getattr(
        importlib.import_module(new), name
    )


def test_the_top_level_names_are_unchanged():
    import fastrsa

    for name in [
        "rdms",
        "compare",
        "rank_transform",
        "squareform",
        "taxonomy",
        "taxonomies",
        "rank_sources",
        "evaluate_transfer",
        "similarity",
        "sweep",
        "open_store",
        "Store",
        "from_rsatoolbox",
        "to_rsatoolbox",
        "attributions",
        "attribution_similarity",
        "set_memory_budget",
        "get_memory_budget",
        "available_backends",
        "BACKENDS",
    ]:
        assert name in fastrsa.__all__ and callable(getattr(fastrsa, name)) or name == "BACKENDS"


# (deprecated module, a name it still gives, that name's home)
DEPRECATED = [
    ("fastrsa.sweeps.source_files", "FeatureSource", "fastrsa.sweeps.file_sources"),
    ("fastrsa.sweeps.stream", "FeatureBuffer", "fastrsa.sweeps.feature_buffer"),
    ("fastrsa.sweeps.files", "files_for", "fastrsa.sweeps.storage"),
]


@pytest.mark.parametrize(("old", "name", "new"), DEPRECATED, ids=lambda v: str(v))
def test_a_renamed_module_still_imports_with_a_deprecation_warning(old, name, new):
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        f"    import {old}\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert f"warned: {old} is deprecated" in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_import_fastrsa_and_the_cli_load_no_optional_package():
    """Function-level imports exist only for optional packages: `import fastrsa` and building
    the CLI's parser load none of them."""
    code = (
        "import sys, fastrsa, fastrsa.cli\n"
        "fastrsa.cli.build_parser()\n"
        "heavy = ['torch', 'numba', 'triton', 'onnxruntime', 'ray', 'rsatoolbox', 'matplotlib']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
