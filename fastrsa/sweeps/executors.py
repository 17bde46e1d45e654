"""Executors: run a sweep's units of work in this process ("local") or as Ray tasks ("ray").

A unit is a small picklable object with `name: str`, `gpu: bool` and `run() -> dict`; it writes
its arrays to the store itself and is idempotent, so an executor only has to run every unit at
least once and collect the small JSON-able dicts `run()` returns. Nothing else travels through
Ray: a task's argument is the unit (a few hundred bytes), its result the dict.

Ray (`pip install fastrsa[ray]`):
- `address=None`: use the cluster this process is already connected to (`ray.is_initialized()`),
  else `ray.init()`, which connects to `RAY_ADDRESS` when that is set and otherwise starts a local
  cluster with all of this machine's cores (and GPUs). `address="auto"` connects to a running
  cluster on this machine, `"ray://host:10001"` to a remote one through Ray Client, `"host:6379"`
  to a cluster this machine is a node of.
- Before connecting to an address (given, or in `RAY_ADDRESS`), `check_ray_address` opens a TCP
  connection to its host and port, waiting at most `connect_timeout` seconds (default
  RAY_CONNECT_TIMEOUT, 10 s): an address nobody answers at fails then, naming the address, where
  `ray.init` would retry for many minutes. A port that answers but is not a Ray cluster is left
  to Ray's own (long) timeouts.
- A cluster `run_units` starts (or connects to) stays up for the rest of the process, so several
  sweeps in one session pay Ray's start-up once; `shutdown_if_started()` stops it (Ray also stops
  it when the process exits).
- The workers must be able to import fastrsa: automatic on a local cluster (Ray's workers run this
  Python and get the driver's working directory on their path); on a remote cluster install
  fastrsa on every node.
- Ray's own logging is quieted (warnings only, worker output not forwarded to this terminal) so
  the progress bars stay readable; a unit's error still comes back as the unit's exception.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import MissingPackage, NeedsDevice, UserError
from .progress import Progress

__all__ = [
    "EXECUTORS",
    "KILL_ONCE_ENV",
    "RAY_CONNECT_TIMEOUT",
    "Unit",
    "check_ray_address",
    "run_units",
    "shutdown_if_started",
]

EXECUTORS = ("local", "ray")

# Seconds to wait for a Ray address's host to accept a TCP connection before giving up on it.
RAY_CONNECT_TIMEOUT = 10.0
RAY_CLIENT_PORT = 10001  # Ray Client's port, when a "ray://host" address names none

# Test hook: when this environment variable (read in the driver, at submission) names a file that
# exists when a unit starts on a Ray worker, that worker deletes the file and SIGKILLs itself, once
# (the tests' "worker killed mid-sweep"). It has no effect on the local executor.
KILL_ONCE_ENV = "FASTRSA_TEST_KILL_ONCE"

_started_ray = False  # whether run_units called ray.init (and so may shut the cluster down)
_remote = None  # the remote function, made on first use (importing this module never imports ray)


class Unit(Protocol):
    """What an executor runs (structural: any picklable object with these attributes)."""

    @property
    def name(self) -> str: ...  # for progress and errors, e.g. "rdms taskA"

    @property
    def gpu(self) -> bool: ...  # computes on a GPU: Ray gives it num_gpus=1

    def run(self) -> dict: ...  # writes its results to the store itself; idempotent


def run_units(
    units: Sequence[Unit],
    executor: str = "local",
    *,
    address: str | None = None,
    progress: Progress | None = None,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    connect_timeout: float = RAY_CONNECT_TIMEOUT,
) -> list[dict]:
    """Run every unit once and return what each `run()` returned, in the order of `units`.

    executor: "local" runs them one after another in this process; "ray" runs each as a Ray task
    (`num_cpus=1`, `num_gpus=1` when `unit.gpu`), at most `max_in_flight` submitted at once
    (default: 2 x the cluster's CPUs; more wait with `ray.wait`), a task whose worker dies retried
    up to `max_retries` times. `address`: the Ray cluster (see the module docstring; ignored by
    "local"); one that does not accept a connection within `connect_timeout` seconds is refused
    (UserError naming it; see `check_ray_address`). `progress.update(1)` after each unit
    finishes (Ray: in the order they finish).

    A unit that raises stops the run: the error is re-raised with its own type, its message
    prefixed by the unit's name (Ray's RayTaskError unwrapped; tasks still in flight cancelled).
    Holds in memory only the units and their result dicts.
    """
    if executor not in EXECUTORS:
        raise ValueError(
            f"executor: expected one of {', '.join(map(repr, EXECUTORS))}, got {executor!r}"
        )
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries: expected an int >= 0, got {max_retries!r}")
    if max_in_flight is not None and (
        isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
    ):
        raise ValueError(f"max_in_flight: expected None or an int >= 1, got {max_in_flight!r}")
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address: expected a str or None, got {type(address).__name__}")
    _check_timeout(connect_timeout)
    units = list(units)
    if executor == "local":
        return _run_local(units, progress)
    if not units:  # nothing to do: do not start a cluster for it
        return []
    return _run_ray(units, address, progress, max_retries, max_in_flight, connect_timeout)


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Refuse a Ray address nothing answers at, within `timeout` seconds (default
    RAY_CONNECT_TIMEOUT): UserError naming the address (and RAY_ADDRESS when it came from there).

    address: "host:port" (a cluster's GCS, e.g. "10.0.0.5:6379"), "ray://host[:port]" (Ray
    Client, port 10001 by default), or None / "auto" / "local" (None: RAY_ADDRESS when set is
    checked; "auto" and "local" name no host here and pass). Only the TCP port is tried: a port
    that answers but is not a Ray cluster passes. Needs no Ray; talks to nothing but that port.
    """
    _check_timeout(timeout, "timeout")
    name = "address"
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or None
        name = "RAY_ADDRESS"
    if address is None or address.strip() in ("auto", "local"):
        return
    host, port = _host_port(address, name)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise UserError(
            f"{name} {address!r}: cannot reach a Ray cluster there ({reason}; waited at most "
            f"{timeout:g} s); start one there (`ray start --head`) or correct the address"
        ) from None


def shutdown_if_started() -> bool:
    """Stop the Ray cluster that `run_units` started or connected to in this process; leave one
    the caller connected to alone. Returns whether it shut one down."""
    global _started_ray
    if not _started_ray:
        return False
    _started_ray = False
    import ray

    if not ray.is_initialized():
        return False
    ray.shutdown()
    return True


# ----------------------------------------------------------------------------- local


def _run_local(units: list[Unit], progress: Progress | None) -> list[dict]:
    results = []
    for unit in units:
        try:
            results.append(unit.run())
        except Exception as err:
            _name_error(err, _unit_name(unit))
            raise
        if progress is not None:
            progress.update(1)
    return results


# ----------------------------------------------------------------------------- ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        if (err.name or "").split(".")[0] != "ray":
            raise
        raise MissingPackage(
            f"executor 'ray' needs the ray package ({err}); install it with "
            "`pip install fastrsa[ray]` or use executor='local'"
        ) from None
    return ray


def _check_timeout(timeout: Any, name: str = "connect_timeout") -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name}: expected a number of seconds > 0, got {type(timeout).__name__}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"{name}: expected a number of seconds > 0, got {timeout!r}")


def _host_port(address: str, name: str) -> tuple[str, int]:
    """(host, port) of "host:port", "[v6]:port" or "ray://host[:port]"; ValueError naming
    `name` for anything else."""
    rest = address.strip()
    client = rest.startswith("ray://")
    if client:
        rest = rest[len("ray://") :].split("/", 1)[0]
    host, sep, port_text = rest.rpartition(":")
    if not sep or host.endswith(":") or (":" in host and not host.startswith("[")):
        host, port_text = rest, ""  # no port (or a bare IPv6 address)
    host = host.strip("[]")
    if not port_text and client:
        port_text = str(RAY_CLIENT_PORT)
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"{name}: expected 'host:port', 'ray://host[:port]', 'auto' or 'local'; got {address!r}"
        )
    return host, int(port_text)


def _connect(ray: Any, address: str | None, timeout: float) -> None:
    """ray.init(address) unless this process is already connected (then `address` is unused);
    an address nothing answers at within `timeout` seconds is refused first."""
    global _started_ray
    if ray.is_initialized():
        return
    check_ray_address(address, timeout)
    ray.init(
        address=address,
        include_dashboard=False,  # faster start; nothing here needs it
        log_to_driver=False,  # worker output would garble the progress bars
        logging_level=logging.ERROR,  # e.g. not the token-auth notice of every start
    )
    _started_ray = True


def _run_on_worker(unit: Unit, kill_file: str | None) -> dict:
    """The body of every Ray task: the test hook (see KILL_ONCE_ENV), then `unit.run()`."""
    if kill_file:
        try:
            os.remove(kill_file)
        except FileNotFoundError:
            pass  # not there (or another worker took it first): run normally
        else:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    return unit.run()


def _remote_fn(ray: Any) -> Any:
    global _remote
    if _remote is None:
        _remote = ray.remote(_run_on_worker)
    return _remote


def _run_ray(
    units: list[Unit],
    address: str | None,
    progress: Progress | None,
    max_retries: int,
    max_in_flight: int | None,
    connect_timeout: float,
) -> list[dict]:
    ray = _import_ray()
    _connect(ray, address, connect_timeout)
    resources = ray.cluster_resources()
    if not resources.get("GPU", 0):
        gpu_units = [_unit_name(u) for u in units if getattr(u, "gpu", False)]
        if gpu_units:  # Ray would keep such a task pending for ever
            raise NeedsDevice(
                f"{gpu_units[0]!r} computes on a GPU but the Ray cluster has none "
                f"({len(gpu_units)} such unit(s)); choose a CPU backend or add GPU nodes"
            )
    if max_in_flight is None:
        max_in_flight = max(2, 2 * int(resources.get("CPU", 1)))
    remote = _remote_fn(ray)
    kill_file = os.environ.get(KILL_ONCE_ENV) or None

    results: list[Any] = [None] * len(units)
    pending: dict[Any, int] = {}  # object ref -> index of its unit

    def collect_one() -> None:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i = pending.pop(ref)
            results[i] = _get(ray, ref, units[i], max_retries)
            if progress is not None:
                progress.update(1)

    try:
        for i, unit in enumerate(units):
            while len(pending) >= max_in_flight:
                collect_one()
            ref = remote.options(
                num_cpus=1,
                num_gpus=1 if getattr(unit, "gpu", False) else 0,
                max_retries=max_retries,
                name=_unit_name(unit),
            ).remote(unit, kill_file)
            pending[ref] = i
        while pending:
            collect_one()
    finally:  # an error or an interrupt: do not leave tasks running on the cluster
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort; the error being raised matters
                pass
    return results


def _get(ray: Any, ref: Any, unit: Unit, max_retries: int) -> dict:
    """ray.get one finished task; a unit's own error comes back as itself, named."""
    from ray.exceptions import RayError, RayTaskError, WorkerCrashedError

    name = _unit_name(unit)
    try:
        return ray.get(ref)
    except RayTaskError as err:
        cause = err.cause
        if isinstance(cause, BaseException) and not isinstance(cause, RayError):
            _name_error(cause, name)
            raise cause from err  # `from`: the worker's traceback stays visible
        raise RuntimeError(f"{name}: the Ray task failed: {err}") from err
    except WorkerCrashedError as err:
        raise RuntimeError(
            f"{name}: its Ray worker died {max_retries + 1} time(s) (max_retries={max_retries})"
        ) from err
    except RayError as err:
        raise RuntimeError(f"{name}: the Ray task failed: {err}") from err


# ----------------------------------------------------------------------------- helpers


def _unit_name(unit: Any) -> str:
    return str(getattr(unit, "name", None) or type(unit).__name__)


def _name_error(err: BaseException, name: str) -> None:
    """Put the unit's name in front of `err`'s message, in place (its type, attributes and
    traceback stay); where the message cannot be edited, add the name as a note."""
    prefix = f"{name}: "
    args = err.args
    if str(err).startswith(prefix):
        return
    try:
        if not args:
            err.args = (prefix + type(err).__name__,)
            return
        if len(args) == 1 and isinstance(args[0], str) and not isinstance(err, KeyError):
            err.args = (prefix + args[0],)
            return
        if isinstance(err, OSError) and isinstance(err.strerror, str):
            err.strerror = prefix + err.strerror
            return
    except (AttributeError, TypeError):  # a read-only args property
        pass
    note = f"(in {name})"
    add_note = getattr(err, "add_note", None)  # Python >= 3.11
    if add_note is not None:
        add_note(note)
    else:  # Python 3.10 does not show notes; kept for callers that look
        err.__notes__ = [*getattr(err, "__notes__", []), note]
