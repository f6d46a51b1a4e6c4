"""The servers under test: uvicorn processes on free 127.0.0.1 ports, started and stopped
by the benchmark, and the CPU and memory they use while it measures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from api.httpprotocol import HEAD_LIMITED_HTTP
from api.wsprotocol import LEAN_WEBSOCKETS

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    """One way of serving: which app, on which uvicorn options, with which environment."""

    peer: str  # teaser | socketio | socketio-emit | starlette: also the client's wire protocol
    app: str
    # How the row is labelled: teaser shipped | tuned, socketio same-wire, socketio-emit
    # emit-and-forget, starlette bare.
    variant: str = ""
    # uvicorn: `python -m uvicorn APP` with the options below and --no-access-log.
    # teaser-serve: `python -m api.cli serve`, as users start Teaser (the Procfile,
    # script/server, the image); it takes only --workers here, the rest is its own.
    launch: str = "uvicorn"
    factory: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    ws: str = "websockets-sansio"
    loop: str = "uvloop"
    http: str = "httptools"
    workers: int = 1
    prepare: tuple[str, ...] = ()  # a command run once before the server starts
    root: Path = ROOT  # the checkout served: bench.ab serves an older one beside this one

    @property
    def options(self) -> str:
        if self.launch == TEASER_SERVE:
            return f"teaser serve --workers {self.workers}"
        return f"ws={self.ws} loop={self.loop} http={self.http} workers={self.workers}"


TEASER_SERVE = "teaser-serve"


def served_ws(spec: ServerSpec) -> str:
    """Teaser serves websockets-sansio through its own subclass, as `teaser serve` does.
    A checkout older than that subclass (bench.ab's base) serves plain websockets-sansio,
    as its own `teaser serve` did: its `api` package would find this checkout's module."""
    lean = (spec.root / "api" / "wsprotocol.py").exists()
    if spec.peer == "teaser" and spec.ws == "websockets-sansio" and lean:
        return LEAN_WEBSOCKETS
    return spec.ws


def served_http(spec: ServerSpec) -> str:
    """Teaser serves httptools through its head-limited subclass, as `teaser serve` does
    (a checkout older than it, plain httptools)."""
    limited = (spec.root / "api" / "httpprotocol.py").exists()
    if spec.peer == "teaser" and spec.http == "httptools" and limited:
        return HEAD_LIMITED_HTTP
    return spec.http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, spec: ServerSpec, logdir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = logdir / f"{spec.peer}-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def command(self) -> list[str]:
        spec = self.spec
        if spec.launch == TEASER_SERVE:
            # What `teaser serve` runs, from this venv: its own uvicorn options and logging
            # (api/serving.py), whatever they are at the commit measured.
            return [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(spec.workers),
            ]
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            spec.app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--ws",
            served_ws(spec),
            "--loop",
            spec.loop,
            "--http",
            served_http(spec),
            "--workers",
            str(spec.workers),
            "--ws-max-size",
            "65536",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "5",
        ]
        if spec.factory:
            command.append("--factory")
        return command

    def start(self, timeout: float = 60.0) -> Server:
        spec = self.spec
        command = self.command()
        env = {**os.environ, **spec.env}
        with self.log_path.open("ab") as log:
            if spec.prepare:
                subprocess.run(
                    spec.prepare, cwd=spec.root, env=env, stdout=log, stderr=log, check=True
                )
            self._process = subprocess.Popen(
                command, cwd=spec.root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.http_base}/healthz", timeout=2) as answer:
                    if answer.status == 200 and self._workers_up():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.spec.peer} ({self.spec.options}) did not start:\n{tail}")

    def _workers_up(self) -> bool:
        return len(self.workers()) >= self.spec.workers

    def workers(self) -> list[psutil.Process]:
        """The processes that serve requests: the workers, not uvicorn's supervisor."""
        if self._process is None:
            return []
        try:
            parent = psutil.Process(self._process.pid)
            if self.spec.workers == 1:
                return [parent]
            return [p for p in parent.children() if "resource_tracker" not in " ".join(p.cmdline())]
        except psutil.NoSuchProcess:
            return []

    def processes(self) -> list[psutil.Process]:
        """Every process of this server: the workers, and with --workers a supervisor and
        whatever else it started (multiprocessing's resource tracker)."""
        if self._process is None:
            return []
        try:
            parent = psutil.Process(self._process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        return int(sum(_quiet(lambda p: p.memory_info().rss, p) for p in self.workers()))

    def cpu_seconds(self) -> list[float]:
        return [_quiet(lambda p: sum(p.cpu_times()[:2]), p) for p in self.workers()]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _quiet(read: Callable[[psutil.Process], float], process: psutil.Process) -> float:
    try:
        return float(read(process))
    except psutil.Error:
        return 0.0
