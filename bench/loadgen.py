"""The two load generators, each its own process: bench.client (sockets and sends, Python
on uvloop; several of them for many sockets) and wrk (idle polls). Both only ever target
127.0.0.1 and stop by themselves."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.servers import ROOT
from bench.stats import percentile

POLL_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"sessionId":"poll-' .. math.random(1, 1000) .. '","siteId":"woodstock_outlet"}'
  return wrk.format(nil, nil, nil, body)
end
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class ClientProcess:
    """bench.client, driven one JSON command per line; `source` binds its sockets."""

    def __init__(self, source: str | None = None) -> None:
        bound = ["--source", source] if source else []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.client", *bound],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def __call__(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client exited during '{cmd}'")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the load client failed '{cmd}': {answer['error']}")
        return answer

    def stop(self) -> None:
        if self._process.poll() is None:
            try:
                assert self._process.stdin
                self._process.stdin.write('{"cmd": "exit"}\n')
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()


class ClientFleet:
    """As many client processes as `count` sockets need at `per_client` each, the k-th bound
    to 127.0.0.(k+2): one source address reaches one port only as many times as the
    ephemeral port range has ports, and one process holds only as many as its descriptor
    limit. They open their shares side by side."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.clients: list[ClientProcess] = []
        self.held: list[int] = []

    @property
    def pids(self) -> list[int]:
        return [client.pid for client in self.clients]

    def open(self, wire: str, base: str, count: int, prefix: str) -> dict[str, Any]:
        shares: list[tuple[int, int]] = []  # (client, sockets it opens now)
        while count > 0:
            k = next((k for k, n in enumerate(self.held) if n < self.per_client), None)
            if k is None:
                self.clients.append(ClientProcess(source=f"127.0.0.{len(self.clients) + 2}"))
                self.clients[-1]("poll_stats")  # answered once started: not part of opening
                self.held.append(0)
                k = len(self.clients) - 1
            share = min(count, self.per_client - self.held[k])
            self.held[k] += share
            shares.append((k, share))
            count -= share

        def open_share(job: tuple[int, int]) -> dict[str, Any]:
            k, share = job
            ask = self.clients[k]
            return ask("open", wire=wire, base=base, count=share, prefix=f"{prefix}c{k}")

        began = time.perf_counter()
        with ThreadPoolExecutor(max(1, len(shares))) as pool:
            answers = list(pool.map(open_share, shares))
        failures = [a["first_failure"] for a in answers if a["failed"]]
        return {
            "open": sum(self.held),
            "failed": sum(a["failed"] for a in answers),
            "first_failure": failures[0] if failures else None,
            "seconds": round(time.perf_counter() - began, 3),
        }

    def latency(self, url: str, count: int) -> dict[str, Any]:
        """One send at a time, each to a random socket of all the fleet's: each from the
        client that holds it (it times the send and the arrival)."""
        took: list[float] = []
        lost, errors = 0, 0
        for _ in range(count):
            client = random.choices(self.clients, weights=self.held)[0]
            answer = client("latency", url=url, count=1, samples=True)
            took += answer["samples_ms"]
            lost, errors = lost + answer["lost"], errors + answer["errors"]
        figures = {
            f"p{pct}_ms": round(percentile(took, pct), 3) if took else None for pct in (50, 99)
        }
        return {
            "n": len(took),
            "lost": lost,
            "errors": errors,
            **figures,
            "max_ms": max(took, default=None),
        }

    def stop(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.clients))) as pool:
            list(pool.map(ClientProcess.stop, self.clients))
        self.clients, self.held = [], []


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_polls(url: str, seconds: float, connections: int = 64) -> dict[str, Any]:
    """Idle polls from one wrk thread (one core at most, like the Python client)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(POLL_SCRIPT)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        script.name,
        url,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        Path(script.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    latency = {
        pct: _ms(value, unit)
        for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    return {
        "requests_per_s": float(rate.group(1)) if rate else None,
        "errors": int(failed.group(1)) if failed else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
    }


def _ms(value: str, unit: str) -> float:
    return round(float(value) * UNITS_MS[unit], 3)
