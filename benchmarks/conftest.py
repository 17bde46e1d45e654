"""Shared benchmark helpers: machine description, providers, and their availability."""

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pytest

import fastrsa
from fastrsa.reference import compare_ref, rdm_ref


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    out = {}
    for pkg in (
        "fastrsa",
        "numpy",
        "scipy",
        "numba",
        "torch",
        "triton",
        "rsatoolbox",
        "onnxruntime",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine_info() -> dict:
    return {"device": cpu_name(), "cores": os.cpu_count(), "versions": versions()}


def rsatoolbox_pipeline(feats: np.ndarray) -> np.ndarray:
    """(B, n, d) features -> (B, B) Spearman of correlation RDMs, the rsatoolbox way."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    rdms = calc_rdm([Dataset(f) for f in feats], method="correlation")
    return compare(rdms, rdms, method="spearman")


def pipeline(provider: str):
    """features (B, n, d) -> all-pairs Spearman (B, B) for one provider."""
    if provider == "reference":
        return lambda feats: compare_ref(rdm_ref(feats), method="spearman")
    if provider == "rsatoolbox":
        return rsatoolbox_pipeline
    return lambda feats: fastrsa.compare(fastrsa.rdms(feats, backend=provider), backend=provider)


def has_module(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


CPU_PROVIDERS = ["reference", "numpy", "numba", "torch", "rsatoolbox"]


def skip_unavailable(provider: str) -> None:
    if provider == "rsatoolbox" and not has_module("rsatoolbox"):
        pytest.skip("rsatoolbox is not installed (pip install fastrsa[bench])")
    if provider in ("numba", "torch") and provider not in fastrsa.available_backends():
        pytest.skip(f"{provider} is not installed")
