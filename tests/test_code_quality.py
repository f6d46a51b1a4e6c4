"""The code stays typed (mypy --strict), lint-clean and formatted (ruff), with the settings in
pyproject.toml; docs/layout.md says how the code is laid out and tests/test_layout.py keeps it."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_code_type_checks_strictly() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_lint_clean() -> None:
    result = run("ruff", "check", "realtime", "api", "tests", "clients")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted() -> None:
    # A `# fmt: skip` is kept only where a table of cases reads better as written.
    result = run("ruff", "format", "--check", "realtime", "api", "tests", "clients")
    assert result.returncode == 0, result.stdout + result.stderr
