"""Which errors are the user's (the `fastrsa` command prints one line and exits 2) and which are
bugs (their traceback is kept, exit 1).

The public API reports bad input with plain ValueError / TypeError (the argument's name, what was
expected, what came) and FileNotFoundError / PermissionError / IsADirectoryError /
NotADirectoryError / FileExistsError for unusable paths: all of these are the user's. So are
`MissingPackage` and `NeedsDevice` (an optional package or a GPU a request needs), and the
RuntimeError / ImportError that fastrsa itself raises saying what a backend "needs" (install X, a
CUDA GPU). Everything else — AssertionError, KeyError, IndexError, AttributeError,
ZeroDivisionError, a RuntimeError from torch's internals, a ModuleNotFoundError of a broken
install — is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "is_user_error",
    "MissingPackage",
    "NeedsDevice",
    "USER_ERRORS",
    "UserError",
]


class UserError(ValueError):
    """Bad input the user can fix (a file, an argument, a path). A ValueError, so callers that
    catch ValueError keep working; use it where a plain ValueError would be ambiguous."""


class MissingPackage(ImportError, RuntimeError):
    """An optional package that a request needs is not installed; the message says what to
    install. Both an ImportError and a RuntimeError, so code that raised either before (the
    backends raise RuntimeError) can raise this without breaking its callers."""


class NeedsDevice(RuntimeError):
    """The device a request needs (a CUDA GPU, an onnxruntime provider) is not available here."""


# The exception types the API uses to report the caller's bad input or unusable paths.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    MissingPackage,
    NeedsDevice,
)

_PACKAGE = Path(__file__).resolve().parent
# fastrsa's own "needs" messages: "backend 'torch' needs PyTorch (...); install it with ...",
# "backend 'triton' needs a CUDA GPU", "plots need matplotlib: `pip install matplotlib`".
_NEEDS = re.compile(r"\bneeds?\b.*(\binstall\b|\bGPU\b|\bCUDA\b)", re.DOTALL)


def _raised_in_fastrsa(err: BaseException) -> bool:
    """Whether the innermost frame of `err`'s traceback is fastrsa's own code."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def is_user_error(err: BaseException) -> bool:
    """True for an error the user caused and can fix (see the module docstring); False for a
    bug, whose traceback should be shown."""
    if isinstance(err, USER_ERRORS):
        return True
    if isinstance(err, (RuntimeError, ImportError)) and not isinstance(err, ModuleNotFoundError):
        return bool(_NEEDS.search(str(err))) and _raised_in_fastrsa(err)
    return False
