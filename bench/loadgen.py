"""The two load generators, each its own process: bench.client (sockets and sends, Python
on uvloop) and wrk (idle polls). Both only ever target 127.0.0.1 and stop by themselves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.servers import ROOT

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
    """bench.client, driven one JSON command per line."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.client"],
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
