"""fastrsa.sweeps.executors (run_units: local and ray) and fastrsa.sweeps.progress.

The Ray tests share one local cluster (2 CPUs, no GPU) started once for the module; they skip
when ray is not installed. The units are small dataclasses defined here, each writing one JSON
file into a test's tmp_path, so the tests can see which units ran, where, when and how often."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastrsa.errors import MissingPackage, NeedsDevice
from fastrsa.sweeps import executors
from fastrsa.sweeps.executors import EXECUTORS, run_units, shutdown_if_started
from fastrsa.sweeps.progress import Progress, format_bytes, peak_rss, summary_line

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="needs ray (pip install fastrsa[ray])")


@dataclass
class FileUnit:
    """Writes `<out>/<name>.json` (its value, square, pid, start and end times) unless that file
    is already there; returns {"computed": 1 or 0, "square": value**2}."""

    name: str
    out: str
    value: int
    sleep: float = 0.0
    gpu: bool = False

    def run(self) -> dict:
        start = time.time()
        path = Path(self.out) / f"{self.name}.json"
        if path.exists():  # idempotent: done before
            return {"computed": 0, "square": self.value**2}
        time.sleep(self.sleep)
        record = {"value": self.value, "pid": os.getpid(), "start": start, "end": time.time()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)  # whole or absent, as a store's writes are
        return {"computed": 1, "square": self.value**2}


@dataclass
class FailUnit:
    name: str
    error: Exception
    gpu: bool = False

    def run(self) -> dict:
        raise self.error


def file_units(out: Path, k: int, sleep: float = 0.0) -> list[FileUnit]:
    return [FileUnit(f"unit {i}", str(out), i, sleep) for i in range(k)]


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for the module (2 CPUs, no GPU); this module's classes are pickled
    by value, since Ray's workers cannot import a test module."""
    import ray
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            num_gpus=0,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    yield ray
    cloudpickle.unregister_pickle_by_value(module)
    if started:
        ray.shutdown()


# ----------------------------------------------------------------------------- local


def test_local_runs_in_order_in_this_process(tmp_path):
    units = file_units(tmp_path, 5)
    progress = Progress(len(units), "units", enabled=False)
    results = run_units(units, progress=progress)
    assert results == [{"computed": 1, "square": i * i} for i in range(5)]
    assert progress.done == 5
    done = records(tmp_path)
    assert sorted(done) == [f"unit {i}" for i in range(5)]
    assert {r["pid"] for r in done.values()} == {os.getpid()}
    starts = [done[f"unit {i}"]["start"] for i in range(5)]
    assert starts == sorted(starts)
    # idempotent: a second run finds everything done
    assert run_units(units) == [{"computed": 0, "square": i * i} for i in range(5)]
    assert run_units([]) == []


def test_local_errors_keep_their_type_and_name_the_unit(tmp_path):
    units = [*file_units(tmp_path, 2), FailUnit("tile block4 0,2", ValueError("bad value 7"))]
    units.append(FileUnit("after", str(tmp_path), 9))
    with pytest.raises(ValueError, match=r"^tile block4 0,2: bad value 7$") as info:
        run_units(units, "local")
    assert type(info.value) is ValueError
    assert not (tmp_path / "after.json").exists()  # the run stopped at the error
    err = FileNotFoundError(2, "No such file or directory", "x.npy")
    with pytest.raises(FileNotFoundError, match="rdm a: No such file") as info:
        run_units([FailUnit("rdm a", err)])
    assert info.value.filename == "x.npy"


def test_local_ignores_the_kill_hook(tmp_path, monkeypatch):
    kill = tmp_path / "kill-once"
    kill.touch()
    monkeypatch.setenv(executors.KILL_ONCE_ENV, str(kill))
    out = tmp_path / "out"
    out.mkdir()
    assert len(run_units(file_units(out, 2))) == 2
    assert kill.exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"executor": "dask"}, r"executor: expected one of 'local', 'ray', got 'dask'"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 1.5}, "max_in_flight"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_units(file_units(tmp_path, 1), **kwargs)
    assert not list(tmp_path.iterdir())  # refused before any work
    assert EXECUTORS == ("local", "ray")


def test_ray_missing_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(MissingPackage, match=r"pip install fastrsa\[ray\]"):
        run_units(file_units(tmp_path, 1), "ray")
    assert run_units([], "ray") == []  # nothing to do: no cluster needed


# ----------------------------------------------------------------------------- ray


@needs_ray
def test_ray_results_equal_local(ray_cluster, tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local = run_units(file_units(tmp_path / "local", 8))
    progress = Progress(8, "units", enabled=False)
    remote = run_units(file_units(tmp_path / "ray", 8), "ray", progress=progress)
    assert remote == local
    assert progress.done == 8
    done = records(tmp_path / "ray")
    assert sorted(done) == sorted(records(tmp_path / "local"))
    assert os.getpid() not in {r["pid"] for r in done.values()}  # ran on the workers
    assert not shutdown_if_started()  # the fixture's cluster is not run_units' to stop
    assert ray_cluster.is_initialized()


@needs_ray
def test_ray_errors_keep_their_type_and_name_the_unit(ray_cluster, tmp_path):
    units = [*file_units(tmp_path, 2), FailUnit("tile block4 0,2", ValueError("bad value 7"))]
    with pytest.raises(ValueError, match=r"^tile block4 0,2: bad value 7$") as info:
        run_units(units, "ray")
    assert type(info.value) is ValueError  # not Ray's RayTaskError(ValueError)
    with pytest.raises(KeyError) as info:
        run_units([FailUnit("rdm b", KeyError("block9"))], "ray")
    assert "(in rdm b)" in info.value.__notes__


@needs_ray
def test_ray_gpu_unit_without_gpus_is_refused(ray_cluster, tmp_path):
    if ray_cluster.cluster_resources().get("GPU"):  # another module's cluster, with GPUs
        pytest.skip("the Ray cluster of this session has GPUs")
    unit = FileUnit("rdm on gpu", str(tmp_path), 1, gpu=True)
    with pytest.raises(NeedsDevice, match="'rdm on gpu' computes on a GPU"):
        run_units([unit], "ray")


@needs_ray
def test_ray_worker_killed_mid_run_is_retried(ray_cluster, tmp_path, monkeypatch):
    kill = tmp_path / "kill-once"
    kill.touch()
    monkeypatch.setenv(executors.KILL_ONCE_ENV, str(kill))
    out = tmp_path / "out"
    out.mkdir()
    results = run_units(file_units(out, 6, sleep=0.05), "ray", max_retries=2)
    assert not kill.exists()  # a worker took the file, so it killed itself
    assert results == [{"computed": 1, "square": i * i} for i in range(6)]
    assert sorted(records(out)) == [f"unit {i}" for i in range(6)]


@needs_ray
def test_ray_backpressure_bounds_tasks_in_flight(ray_cluster, tmp_path):
    results = run_units(file_units(tmp_path, 4, sleep=0.25), "ray", max_in_flight=1)
    assert [r["square"] for r in results] == [0, 1, 4, 9]
    spans = sorted((r["start"], r["end"]) for r in records(tmp_path).values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # one at a time, although the cluster has 2 CPUs


# ----------------------------------------------------------------------------- progress

LINE = re.compile(r"^rdms: (\d+)/20 \((\d+)%\) \d+\.\d(/s| s/item) (ETA \S+ s|in \S+ s)$")


def test_progress_lines_when_enabled_and_not_a_terminal(capsys):
    with Progress(20, "rdms", enabled=True) as bar:
        for _ in range(20):
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10  # 10%, 20%, ..., 90%, then the final line of close()
    for line in lines:
        assert LINE.match(line), line
    assert [int(LINE.match(x).group(2)) for x in lines] == list(range(10, 101, 10))
    assert " ETA " in lines[0] and lines[-1].startswith("rdms: 20/20 (100%)")
    assert " in " in lines[-1]


def test_progress_quiet_unless_a_terminal_or_enabled(capsys):
    for enabled in (None, False):  # capsys's stderr is not a terminal
        with Progress(5, "tiles", enabled=enabled) as bar:
            bar.update(5)
        assert bar.done == 5
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="total"):
        Progress(-1, "tiles")


def test_progress_redraws_in_place_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = Progress(3, "tiles")  # enabled=None: a terminal, so on
    for _ in range(3):
        bar.update()
    bar.close()
    bar.close()  # once
    text = term.getvalue()
    assert text.startswith("\rtiles: 1/3 (33%)") and text.endswith("\n")
    assert text.count("\n") == 1
    assert text.rstrip().rsplit("\r", 1)[-1].startswith("tiles: 3/3 (100%)")


def test_summary_line_and_peak_rss():
    line = summary_line(12, 30, 64.2, 2 * 1024**3)
    assert line == "computed 12, reused 30 in 1m 04s; peak memory 2.0 GiB"
    assert summary_line(0, 5, 3.25, 512) == "computed 0, reused 5 in 3.2 s; peak memory 512 B"
    assert format_bytes(1536 * 1024) == "1.5 MiB"
    peak = peak_rss()
    assert peak > 10 * 2**20  # bytes: this process holds numpy and pytest
    status = Path("/proc/self/status")
    if status.exists():  # Linux: the kernel's own high-water mark, in kB
        hwm = int(re.search(r"VmHWM:\s*(\d+) kB", status.read_text()).group(1)) * 1024
        assert abs(peak - hwm) <= 0.1 * hwm
