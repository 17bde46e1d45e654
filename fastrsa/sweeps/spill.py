"""The sweep's spill folders: where features that do not fit the memory budget go
(FeatureBuffer's spill files), one folder per process under FASTRSA_SPILL_DIR (else the system's
temporary folder), removed when the process exits; folders that killed runs left are removed by
the next run (the rule of fastrsa.io.clean_temporaries: same host by pid, others after a day)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from ..io.atomic import clean_temporaries, os_reason, temp_tag

__all__ = ["SPILL_ENV", "SPILL_PREFIX", "clean_spills", "spill_base", "spill_dir", "spill_files"]


def spill_files(folder: str | os.PathLike) -> list[Path]:
    """The spill files directly in `folder` (a FeatureBuffer's, while it is open)."""
    folder = Path(folder)
    return sorted(folder.glob(".fastrsa-spill-*.bin")) if folder.is_dir() else []


SPILL_ENV = "FASTRSA_SPILL_DIR"
SPILL_PREFIX = (
    ".fastrsa-spill"  # a process's spill folder: .fastrsa-spill.<pid>-<host>-<random>.tmp
)
_mine: dict[tuple[int, str], str] = {}  # (pid, base) -> this process's spill folder there


def spill_base() -> str:
    """The folder that holds the spill folders: FASTRSA_SPILL_DIR, else the system's temporary
    folder. FASTRSA_SPILL_DIR must name an existing folder this process can write in (it is not
    created: a typo should not scatter folders): else a ValueError naming the variable and the
    path."""
    base = os.environ.get(SPILL_ENV)
    if not base:
        return tempfile.gettempdir()
    where = f"{SPILL_ENV}={base}"
    if not os.path.exists(base):
        raise ValueError(
            f"{where}: no such folder (where features beyond the memory budget spill); create "
            f"it, or unset {SPILL_ENV} to use the temporary folder"
        )
    if not os.path.isdir(base):
        raise ValueError(f"{where}: is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: permission denied (cannot write in it)")
    return base


def clean_spills() -> list[str]:
    """Remove the spill folders (and spill files) that processes now gone left in spill_base():
    a killed sweep's. A running process's are left alone (another machine's: once a day old,
    as fastrsa.io.clean_temporaries). Returns the names removed."""
    return clean_temporaries(spill_base(), lambda name: name.startswith(SPILL_PREFIX))


def spill_dir() -> str:
    """This process's spill folder in spill_base(), where features that exceed the memory budget
    spill: made on first use, removed with what it holds when the process exits. Every call
    first removes what killed sweeps left there (clean_spills)."""
    base = spill_base()
    clean_spills()
    key = (os.getpid(), base)
    if key in _mine and os.path.isdir(_mine[key]):
        return _mine[key]
    try:
        path = tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}.{temp_tag()}", suffix=".tmp", dir=base)
    except OSError as err:
        where = f"{SPILL_ENV}={base}" if os.environ.get(SPILL_ENV) else base
        raise ValueError(f"{where}: cannot make a spill folder in it ({os_reason(err)})") from None
    _mine[key] = path
    atexit.register(_remove_folder, path, key[0])
    return path


def _remove_folder(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not a forked child's exit
        shutil.rmtree(path, ignore_errors=True)
