"""The house rules that a reviewer would otherwise keep by memory (DESIGN.md, "Layers"):

- no module over LINE_LIMIT lines, except those listed in LONG_MODULES with the reason;
- no private name (`_name`) imported from another fastrsa module;
- no fastrsa import inside a function (function-level imports are for optional third-party
  packages only, never to dodge a cycle);
- every public module declares `__all__`.

The import order itself (layers, no cycles, kernels importing nothing of fastrsa) is checked by
import-linter (`make lint`, the contracts in pyproject.toml). These tests read the installed
package's sources (the wheel under test), so what ships is what is checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fastrsa.kernels
import pytest

import fastrsa

PACKAGE = Path(fastrsa.__file__).parent
# fastrsa.kernels is PACKAGE/kernels in the wheel; an editable checkout maps it to kernels/.
KERNELS = Path(fastrsa.kernels.__file__).parent
LINE_LIMIT = 450
# module (relative to the package) -> why it may be longer. Keep this empty or nearly so.
LONG_MODULES: dict[str, str] = {}  # e.g. {"fastrsa.x": "why"}


def _sources() -> dict[Path, str]:
    """{source file: its module name} of fastrsa and fastrsa.kernels."""
    out = {}
    for root, prefix in ((PACKAGE, ["fastrsa"]), (KERNELS, ["fastrsa", "kernels"])):
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("").parts
            if "data" in rel or (root == PACKAGE and rel[0] == "kernels"):
                continue
            parts = prefix + list(rel[:-1] if rel[-1] == "__init__" else rel)
            out[path] = ".".join(parts)
    return dict(sorted(out.items(), key=lambda item: item[1]))


SOURCES = _sources()
MODULES = list(SOURCES)
MODULE_NAMES = set(SOURCES.values())
# The modules that need an optional package at import (numba, torch, triton: the kernels of those
# backends, loaded when a backend is first chosen; torch: the Taskonomy encoder definitions) may be
# imported inside a function, so that `import fastrsa` and the CLI load none of them.
OPTIONAL = (
    "fastrsa.kernels.numba",
    "fastrsa.kernels.torch",
    "fastrsa.kernels.triton",
    "fastrsa.models",
)


def _optional(module: str, node: ast.ImportFrom | None = None) -> bool:
    """Whether a function-level import loads only modules that need an optional package."""
    if node is not None and module == "fastrsa.kernels":  # from fastrsa.kernels import numba
        wanted = [f"{module}.{alias.name}" for alias in node.names]
    else:
        wanted = [module]
    return all(any(n == k or n.startswith(k + ".") for k in OPTIONAL) for n in wanted)


def _name(path: Path) -> str:
    return SOURCES.get(path) or ".".join(
        ["fastrsa", *path.relative_to(PACKAGE).with_suffix("").parts]
    )


def _package_of(path: Path) -> str:
    name = _name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _target(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module an ImportFrom names."""
    if not node.level:
        return node.module or ""
    base = _package_of(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_fastrsa(module: str) -> bool:
    return module == "fastrsa" or module.startswith("fastrsa.")


def test_the_package_sources_are_found():
    names = {_name(p) for p in MODULES}
    assert {"fastrsa", "fastrsa.rdms", "fastrsa.kernels", "fastrsa.cli"} <= names
    assert len(MODULES) > 40


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_passes_the_line_limit(path):
    rel = _name(path)
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if rel in LONG_MODULES:
        assert lines > LINE_LIMIT, f"{rel} is no longer long: remove it from LONG_MODULES"
        return
    assert lines <= LINE_LIMIT, (
        f"{rel} has {lines} lines, over the limit of {LINE_LIMIT}: split it into two modules "
        "(or list it in LONG_MODULES with the reason)"
    )


def _function_nodes(tree: ast.AST) -> set[int]:
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner.update(id(sub) for sub in ast.walk(node) if sub is not node)
    return inner


def _problems(source: str, path: Path) -> list[str]:
    """What breaks the import rules in `source`, the text of the module at `path`."""
    tree = ast.parse(source)
    inside = _function_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _target(node, path)
            if not _is_fastrsa(module):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                # a private module (`from . import _arrays`) is a home for shared public names
                if private and f"{module}.{alias.name}" not in MODULE_NAMES:
                    found.append(f"line {node.lineno}: imports private {module}.{alias.name}")
            if id(node) in inside and not _optional(module, node):
                found.append(f"line {node.lineno}: imports {module} inside a function")
        elif isinstance(node, ast.Import) and id(node) in inside:
            for alias in node.names:
                if _is_fastrsa(alias.name) and not _optional(alias.name):
                    found.append(f"line {node.lineno}: imports {alias.name} inside a function")
    return found


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_private_name_crosses_a_module_and_no_import_hides_in_a_function(path):
    assert _problems(path.read_text(encoding="utf-8"), path) == []


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if not any(s.startswith("_") for s in _name(p).split("."))],
    ids=_name,
)
def test_every_public_module_declares_all(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    assert "__all__" in names, f"{_name(path)} is public but declares no __all__"


def test_the_checks_catch_what_they_are_for():
    """The import checks are not vacuous: a module with each fault is caught, each once."""
    source = (
        "from ..compare import _vectors\n"
        "def f():\n"
        "    from ..rdms import rdms\n"
        "    import fastrsa.io\n"
        "    import numpy\n"
        "    from ..kernels import numba\n"
        "    from ..kernels import numba, numpy\n"
        "from ..compare import compare\n"
    )
    problems = _problems(source, PACKAGE / "sweeps" / "probe.py")
    assert problems == [
        "line 1: imports private fastrsa.compare._vectors",
        "line 3: imports fastrsa.rdms inside a function",
        "line 4: imports fastrsa.io inside a function",
        "line 7: imports fastrsa.kernels inside a function",
    ]
