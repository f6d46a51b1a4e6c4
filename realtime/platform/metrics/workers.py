"""Several workers, one set of metrics: the directory their files share (prometheus_client's
multiprocess mode), what becomes of a dead worker's files, and each worker's process_*."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, multiprocess, values
from prometheus_client.process_collector import ProcessCollector

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The private directory prepare_worker_metrics() made, by the pid of the process that made it.
_made: dict[int, str] = {}


def prepare_worker_metrics() -> None:
    """For a supervisor, before it starts its workers (they inherit the environment):
    give them a directory of their own to write their metrics in, empty."""
    if directory := os.environ.get(DIRECTORY_VARIABLE):
        # A previous run's files would add its counts to this one's.
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
        return
    directory = tempfile.mkdtemp(prefix="teaser-metrics-")
    _made[os.getpid()] = directory
    atexit.register(release_private_directory)
    os.environ[DIRECTORY_VARIABLE] = directory


def release_private_directory() -> None:
    """Remove the directory prepare_worker_metrics() made, in the process that made it: at
    exit for a supervisor of workers, and when the worker stops for a lone worker, which
    uvicorn ends with the SIGTERM it caught (re-raised, so atexit never runs)."""
    if directory := _made.pop(os.getpid(), None):
        shutil.rmtree(directory, ignore_errors=True)
        # Nothing started after this (a test's next server) may write into what is gone.
        if os.environ.get(DIRECTORY_VARIABLE) == directory:
            del os.environ[DIRECTORY_VARIABLE]


def multiprocess_directory() -> str | None:
    """The shared directory if this process writes its metrics there. prometheus_client
    decides when it is first imported (by the variable's presence then), so that is asked,
    not the environment now."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ[DIRECTORY_VARIABLE]


def sweep_dead_workers(directory: str) -> None:
    """Forget the live gauges (open sockets, process_*) of workers that are gone: a killed
    worker never removes its own, and its replacement has a new pid. Their counters stay,
    so totals never go down."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def forget_worker(directory: str) -> None:
    """This worker is stopping: its live gauges go with it."""
    multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the pid is in use
    return True


class ProcessGauges:
    """process_* of this worker, copied at each flush from prometheus_client's own
    ProcessCollector (which reads /proc, and in multiprocess mode would describe only the
    worker answering the scrape). As live gauges, each worker's values carry its `pid`;
    process_cpu_seconds_total keeps its usual name, so rate() over it works as ever."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._reader = ProcessCollector(registry=None)
        self._gauges: dict[str, prometheus_client.Gauge] = {}

    def flush(self) -> None:
        for family in self._reader.collect():
            for sample in family.samples:
                self._gauge(sample.name, family.documentation).set(sample.value)

    def _gauge(self, name: str, help_text: str) -> prometheus_client.Gauge:
        if name not in self._gauges:
            self._gauges[name] = prometheus_client.Gauge(
                name, help_text, registry=self.registry, multiprocess_mode="liveall"
            )
        return self._gauges[name]
