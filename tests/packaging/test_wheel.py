"""The wheel, built from this checkout and installed in a fresh venv outside it, serves
everything: the send and the poll, the widget, the dashboard and the demo page."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.cli import DISTRIBUTION, version
from tests.documented import commands, copy_of_checkout
from tests.support import DEMO_HEADERS, DEMO_SITE, ROOT, free_port, new_session_id

pytestmark = pytest.mark.timeout(600)

# What a user's shell has, without this checkout's venv or source on any path.
CLEAN_ENV = {
    key: value
    for key, value in os.environ.items()
    if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
}


# The README's own commands build and install the wheel, run as written in a fresh clone;
# only the venv's place, /tmp/teaser, becomes one of this run's (tests/test_docs_commands.py
# leaves these commands to this module).
README_VENV = "/tmp/teaser"
WHEEL_STEPS = ("python3 -m pip wheel", "python3 -m venv", f"{README_VENV}/bin/teaser")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's bin/ holding the installed wheel."""
    where = tmp_path_factory.mktemp("wheel")
    copy_of_checkout(where / "clone")
    steps = [c for c in commands("README.md") if c.text.startswith(WHEEL_STEPS)]
    # In the README's order: build, install, ask the version.
    assert len(steps) == len(WHEEL_STEPS), steps
    assert all(c.text.startswith(s) for c, s in zip(steps, WHEEL_STEPS, strict=True)), steps
    for step in steps:
        run("bash", "-c", step.text.replace(README_VENV, str(where / "venv")), cwd=where / "clone")
    assert len(list((where / "clone" / "dist").glob("teaser_push-*.whl"))) == 1
    return where / "venv" / "bin"


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {
        **CLEAN_ENV,
        "TEASER_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'teaser.db'}",
    }
    env.pop("REDIS_URL", None)
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [installed / "teaser", "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base_url, process, home / "server.log")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_wheel_carries_the_package_data_the_server_reads(installed: Path) -> None:
    script = (
        "import api, widget, dashboard, realtime.targeting as t, importlib.resources as r;"
        "print(api.__file__);"
        "print(sorted(p.name for p in r.files('dashboard').joinpath('assets').iterdir()));"
        "print(r.files(t).joinpath('default_rules.toml').is_file(),"
        " r.files(t).joinpath('rules.schema.json').is_file(),"
        " r.files('widget').joinpath('widget.js').is_file())"
    )
    lines = run(installed / "python", "-c", script, cwd=installed).splitlines()
    assert lines[0].startswith(str(installed.parent)), "imported from the checkout, not the wheel"
    checkout_assets = sorted(p.name for p in (ROOT / "dashboard" / "assets").iterdir())
    assert lines[1] == repr(checkout_assets)
    assert lines[2] == "True True True"


def test_teaser_and_python_m_api_say_the_version_and_the_license_ships(installed: Path) -> None:
    expected = f"teaser {version()}"
    assert run(installed / "teaser", "--version", cwd=installed).strip() == expected
    assert run(installed / "python", "-m", "api", "--version", cwd=installed).strip() == expected
    script = (
        "import importlib.metadata as m;"
        f"d = m.distribution({DISTRIBUTION!r});"
        "print(d.metadata['License-Expression']);"
        "print(sorted(str(f) for f in d.files or () if f.name == 'LICENSE'))"
    )
    license_lines = run(installed / "python", "-c", script, cwd=installed).splitlines()
    assert license_lines == ["MIT", f"['teaser_push-{version()}.dist-info/licenses/LICENSE']"]


def test_a_teaser_sent_to_the_installed_server_is_polled_once(served: str) -> None:
    session_id = new_session_id()
    sent = httpx.put(
        f"{served}/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session_id, "message": "🎉 Installed from a wheel", "expiresIn": 60000},
    )
    assert sent.status_code == 201, sent.text
    poll = {"sessionId": session_id, "siteId": DEMO_SITE}
    first = httpx.post(f"{served}/api/teaser-messages", json=poll).json()
    assert [m["message"] for m in first["messages"]] == ["🎉 Installed from a wheel"]
    assert httpx.post(f"{served}/api/teaser-messages", json=poll).json()["messages"] == []


@pytest.mark.parametrize(
    ("path", "content_type", "contains"),
    [
        ("/widget.js", "application/javascript", "TeaserWidget"),
        ("/demo", "text/html", "widget.js"),
        ("/dashboard/login", "text/html", "<form"),
        ("/dashboard/assets/main.js", "javascript", "import"),
        ("/dashboard/assets/dashboard.css", "text/css", "{"),
    ],
)
def test_the_installed_server_serves_its_pages(
    served: str, path: str, content_type: str, contains: str
) -> None:
    answer = httpx.get(f"{served}{path}")
    assert answer.status_code == 200, answer.text
    assert content_type in answer.headers["content-type"]
    assert contains in answer.text


def test_the_dashboard_asks_an_anonymous_visitor_to_sign_in(served: str) -> None:
    answer = httpx.get(f"{served}/dashboard")
    assert answer.status_code in (302, 303, 307)
    assert answer.headers["location"].endswith("/dashboard/login")


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_until_live(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the installed server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"the installed server did not start:\n{log.read_text()}")
