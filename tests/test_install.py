"""What a user installs: every backend module imports, every data file is shipped, the version is
the installed metadata's, and the console script runs.

`make test` runs the suite against the wheel installed in a fresh environment, from outside the
checkout, with FASTRSA_TEST_INSTALLED=1: then the package must not come from the checkout, and
every optional backend must import (the test environment installs the extras). Run from a
development install, these checks hold too (and skip backends whose packages are missing).
"""

import importlib
import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastrsa

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = os.environ.get("FASTRSA_TEST_INSTALLED") == "1"
# backend package -> the third-party module it needs
BACKENDS = {"numpy": "numpy", "numba": "numba", "torch": "torch", "triton": "triton"}
OPS = ("rdm", "rank", "corr")  # every backend has these; kernels/<backend>/ may hold more


def _kernel_modules(backend: str) -> list[str]:
    """The op modules of a backend: the checkout's kernels/<backend>/*.py where the tests sit in
    a checkout (so a module missing from the wheel is caught), else the installed ones."""
    folder = ROOT / "kernels" / backend
    if folder.is_dir():
        names = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    else:
        import pkgutil

        package = importlib.import_module(f"fastrsa.kernels.{backend}")
        names = {m.name for m in pkgutil.iter_modules(package.__path__)}
    return sorted(names | set(OPS))


def test_package_is_the_installed_one():
    """Under `make test`, fastrsa comes from the test environment, not from the checkout."""
    if not INSTALLED:
        pytest.skip("FASTRSA_TEST_INSTALLED=1 is set by `make test` only")
    import fastrsa.kernels

    package = Path(fastrsa.__file__).resolve().parent
    kernels = Path(fastrsa.kernels.__file__).resolve().parent
    # the test environment may itself sit in the checkout (build/venv-test), its site-packages not
    assert package.parent.name == "site-packages", f"fastrsa imported from {package}"
    assert package != ROOT / "fastrsa", f"fastrsa imported from the checkout: {package}"
    assert kernels == package / "kernels", f"fastrsa.kernels imported from {kernels}"
    assert Path(sys.prefix).resolve() in package.parents, (package, sys.prefix)
    direct_url = importlib.metadata.distribution("fastrsa").read_text("direct_url.json") or "{}"
    assert not json.loads(direct_url).get("dir_info", {}).get("editable"), direct_url


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_modules_import(backend):
    if not INSTALLED:
        pytest.importorskip(BACKENDS[backend])
    package = importlib.import_module(f"fastrsa.kernels.{backend}")
    assert Path(package.__file__).parent.name == backend
    for name in _kernel_modules(backend):
        module = importlib.import_module(f"fastrsa.kernels.{backend}.{name}")
        assert module.__name__ == f"fastrsa.kernels.{backend}.{name}"
        if name in OPS:
            assert hasattr(module, f"{name}_{backend}"), f"{module.__name__} lacks {name}_{backend}"


def _shipped(files) -> set[str]:
    out = set()
    stack = [(files, "")]
    while stack:
        node, prefix = stack.pop()
        for child in node.iterdir():
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                stack.append((child, f"{prefix}{child.name}/"))
            else:
                out.add(f"{prefix}{child.name}")
    return out


def test_data_files_are_installed():
    root = importlib.resources.files("fastrsa")
    assert root.joinpath("py.typed").is_file()
    data = _shipped(root / "data")
    assert "mini_taskonomy/training.json" in data
    assert any(f.startswith("mini_taskonomy/") and f.endswith(".onnx") for f in data), data
    source = ROOT / "fastrsa" / "data"
    if source.is_dir():  # every data file of the checkout is in the installed package
        expected = {
            p.relative_to(source).as_posix()
            for p in source.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert expected <= data, sorted(expected - data)
    for name in data:
        if name.endswith(".onnx"):
            assert (root / "data" / name).read_bytes()[:2], f"{name} is empty"


def test_version_is_the_installed_metadata():
    assert fastrsa.__version__ == importlib.metadata.version("fastrsa")
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        declared = tomllib.loads(pyproject.read_text())["project"]["version"]
        assert fastrsa.__version__ == declared


def _fastrsa_command() -> list[str]:
    script = Path(sys.executable).parent / "fastrsa"
    if script.is_file():  # the installed console script
        return [str(script)]
    if INSTALLED:
        pytest.fail(f"the console script is not installed beside {sys.executable}")
    return [sys.executable, "-m", "fastrsa"]


def test_console_script_lists_the_backends():
    proc = subprocess.run(
        [*_fastrsa_command(), "backends"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    status = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip())
    wanted = ("numpy", "numba", "torch") if INSTALLED else ("numpy",)
    for name in wanted:
        assert status.get(name, "").strip() == "available", proc.stdout
