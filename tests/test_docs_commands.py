"""Every command the README and docs give runs as written, in order, on a fresh clone.

The clone is this checkout's tracked files copied to a new folder (so no `teaser.db`, no
`rules/`, no `.env`), with `.venv` pointing at the installed environment: installing is
what `.ci/run` proves on a real clean clone, so it isn't repeated here. The README's own
`script/server` serves the rest, the way a newcomer starts it.

Commands run through bash exactly as they stand on the page, comments and all, with two
changes said here: `127.0.0.1:8000` becomes the port this run's server got (8000 may be
taken on a test machine), and curl gets `--fail-with-body`, so a 4xx answer fails the
command instead of printing a JSON error and exiting 0. A few commands can't run inside
the test suite (Docker, the benchmark, the suite itself); each names where it is run
instead, and a test below keeps that list honest.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.cli import _parser as cli_parser
from tests.documented import (
    PAGES,
    Command,
    commands,
    copy_of_checkout,
    every_command,
    inline_subcommands,
)
from tests.support import POSTGRES_URL, ROOT, drop_postgres_database, free_port

pytestmark = pytest.mark.timeout(300)

DOCUMENTED_BASE = "127.0.0.1:8000"
# The database docs/scaling.md creates and names, on the machine's PostgreSQL: this run
# creates and serves one of its own name instead.
DOCUMENTED_DATABASE = "teaser"
DOCUMENTED_POSTGRES = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DOCUMENTED_DATABASE}"
COMMAND_TIMEOUT = 90.0


@dataclass(frozen=True)
class RunElsewhere:
    why: str
    where: str  # a path in this repository that runs (or measures) the command


# Commands that start with one of these are not run here; each says where it runs.
NOT_RUN: dict[str, RunElsewhere] = {
    "script/test": RunElsewhere("the suite itself, which this test is part of", ".ci/run"),
    "python3 -m pip wheel": RunElsewhere("builds the wheel", "tests/packaging/test_wheel.py"),
    "python3 -m venv": RunElsewhere(
        "installs the wheel in a fresh venv", "tests/packaging/test_wheel.py"
    ),
    "/tmp/teaser/bin/teaser": RunElsewhere(
        "the installed wheel's command", "tests/packaging/test_wheel.py"
    ),
    "/opt/teaser/bin/teaser": RunElsewhere(
        "the installed wheel's command", "tests/packaging/test_wheel.py"
    ),
    "docker": RunElsewhere("needs a Docker engine and a built image", "script/container-test"),
    "DOCKER_BUILDKIT=1": RunElsewhere(
        "needs a Docker engine and a built image", "script/container-test"
    ),
    "script/base-image": RunElsewhere(
        "builds a Debian base image with debootstrap (minutes, root)", "script/container-test"
    ),
    "cp .env.example .env": RunElsewhere(
        "the first step of the compose recipe", "tests/platform/test_deploy_files.py"
    ),
    "script/bench": RunElsewhere("a measurement of minutes, not a test", "bench/README.md"),
    "pip install -e clients/python": RunElsewhere(
        "script/bootstrap test installs the client", "script/bootstrap"
    ),
}
# Python blocks that are parts of a program, using names the reader defines.
FRAGMENTS: dict[tuple[str, str], RunElsewhere] = {
    ("docs/webhooks.md", "from standardwebhooks import Webhook"): RunElsewhere(
        "a receiver's route, with the reader's secret", "tests/webhooks/test_events.py"
    ),
    ("README.md", "from standardwebhooks import Webhook"): RunElsewhere(
        "a receiver's one line, with the reader's secret and request",
        "tests/webhooks/test_events.py",
    ),
    ("clients/python/README.md", "from teaser_client import Draft, Teaser"): RunElsewhere(
        "uses the reader's url, key and session_id", "tests/clients/test_python_client.py"
    ),
    ("clients/python/README.md", "async with AsyncTeaser("): RunElsewhere(
        "uses the reader's url, key and session_id", "tests/clients/test_python_client.py"
    ),
}


def not_run(command: Command) -> RunElsewhere | None:
    if command.language == "python":
        for (page, opening), reason in FRAGMENTS.items():
            if command.page == page and command.text.startswith(opening):
                return reason
        return None
    for prefix, reason in NOT_RUN.items():
        if command.text.startswith(prefix):
            return reason
    return None


def starts_a_server(command: Command) -> bool:
    return command.language == "sh" and "script/server" in command.words


def listens(command: Command) -> bool:
    return command.language == "sh" and command.words[:2] == [".venv/bin/teaser", "listen"]


@dataclass
class Clone:
    """A fresh clone's folder, its servers, and what its commands printed."""

    path: Path
    env: dict[str, str]
    base: str = ""
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    last_send: Command | None = None
    last_poll: Command | None = None

    def as_written(self, command: Command) -> str:
        text = command.text.replace(DOCUMENTED_BASE, self.base.removeprefix("http://"))
        own = self.env["TEASER_DOCS_POSTGRES"]
        text = text.replace(DOCUMENTED_POSTGRES, own)
        if command.words[:1] == ["createdb"]:
            text = re.sub(rf" {DOCUMENTED_DATABASE}(?=\s|$)", " " + own.rsplit("/", 1)[1], text)
        return re.sub(r"^curl ", "curl --fail-with-body ", text)

    def run(self, command: Command) -> subprocess.CompletedProcess[str]:
        if command.language == "python":
            argv = [str(self.path / ".venv/bin/python"), "-c", self.as_written(command)]
        else:
            argv = ["bash", "-c", self.as_written(command)]
        return subprocess.run(
            argv,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def serve(self, command: Command, port: int) -> subprocess.Popen[bytes]:
        log = (self.path / f"server-{port}.log").open("wb")
        server = subprocess.Popen(
            ["bash", "-c", self.as_written(command)],
            cwd=self.path,
            env={**self.env, "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.servers.append(server)
        wait_until_ready(server, port, self.path / f"server-{port}.log")
        return server

    def stop(self, server: subprocess.Popen[bytes]) -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def wait_until_ready(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server stopped:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server never got ready:\n{log.read_text(errors='replace')}")


def clean_env(home: Path) -> dict[str, str]:
    """A newcomer's shell: none of the test run's database, broker or Teaser settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEASER_", "PYTEST", "VIRTUAL_ENV"))
        and key not in ("DATABASE_URL", "REDIS_URL", "PORT", "HOST", "PYTHONPATH", "CI")
        and key not in ("WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR")
    }
    # Stopping a server needn't wait out the drain a deploy gets.
    env["TEASER_DRAIN_SECONDS"] = "0"
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    where = tmp_path_factory.mktemp("fresh-clone")
    copy_of_checkout(where / "teaser", with_venv=True)
    home = where / "home"
    home.mkdir()
    # A name of this run's own, for the database the docs create (dropped at the end).
    postgres = POSTGRES_URL.rsplit("/", 1)[0] + f"/teaser_docs_{uuid.uuid4().hex[:12]}"
    env = {**clean_env(home), "TEASER_DOCS_POSTGRES": postgres}
    clone = Clone(where / "teaser", env)
    try:
        yield clone
    finally:
        for server in clone.servers:
            clone.stop(server)
        asyncio.run(drop_postgres_database(postgres))


@pytest.mark.parametrize("page", PAGES)
def test_the_commands_on_each_page_run_as_written(page: str, clone: Clone) -> None:
    failures: list[str] = []
    for command in commands(page):
        if not_run(command):
            continue
        outcome = run_one(clone, command)
        if outcome:
            failures.append(f"{command}\n{outcome}")
    assert not failures, "\n\n".join(failures)


def run_one(clone: Clone, command: Command) -> str | None:
    """Run one command in the clone; what went wrong, or None."""
    if starts_a_server(command):
        port = free_port()
        server = clone.serve(command, port)
        if not clone.base:
            # The README's server serves the rest; PORT is what a newcomer set for it.
            clone.base = f"http://127.0.0.1:{port}"
            clone.env["PORT"] = str(port)
        else:
            clone.stop(server)
        return None
    if listens(command):
        return listen(clone, command)
    if not clone.base and DOCUMENTED_BASE in command.text:
        return "needs the server, but no command on the pages before it starts one"
    result = clone.run(command)
    if command.words[:3] == ["curl", "-X", "PUT"]:
        clone.last_send = command
    elif command.words[:3] == ["curl", "-X", "POST"] and "teaser-messages" in command.text:
        clone.last_poll = command
    if result.returncode != 0:
        return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return None


def listen(clone: Clone, command: Command) -> str | None:
    """A listener runs until stopped: it must print the next send, and ack it, so the
    page's poll afterwards finds nothing."""
    if clone.last_send is None or clone.last_poll is None:
        return "a listener needs a send and a poll on the page before it"
    listener = subprocess.Popen(
        ["bash", "-c", f"exec {clone.as_written(command)}"],
        cwd=clone.path,
        env={**clone.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert listener.stdout is not None
        first = listener.stdout.readline()  # it says when it is listening
        if listener.poll() is not None:
            return f"the listener stopped: {first}{listener.stdout.read()}"
        sent = clone.run(clone.last_send)
        if sent.returncode != 0:
            return f"the send failed: {sent.stdout}{sent.stderr}"
        message = re.search(r'"message": "([^"]+)"', clone.last_send.text)
        assert message is not None
        heard = listener.stdout.readline()
        if message.group(1) not in heard:
            return f"the listener printed {first!r} and {heard!r}, not the message sent"
        time.sleep(0.3)  # acks are batched (50 ms)
        listener.send_signal(signal.SIGINT)
        if listener.wait(timeout=10) != 0:
            return f"the listener exited {listener.returncode}: {listener.stdout.read()}"
        poll = clone.run(clone.last_poll)
        if '"messages":[]' not in poll.stdout.replace(" ", ""):
            return f"the message was not acked: the next poll returned {poll.stdout}"
        return None
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_each_command_not_run_here_says_where_it_runs() -> None:
    documented = every_command()
    for prefix, reason in NOT_RUN.items():
        assert (ROOT / reason.where).exists(), f"{prefix}: {reason.where} does not exist"
        assert any(c.text.startswith(prefix) for c in documented), (
            f"no page gives a command starting {prefix!r}: drop it from NOT_RUN"
        )
    for (page, opening), reason in FRAGMENTS.items():
        assert (ROOT / reason.where).exists(), f"{opening}: {reason.where} does not exist"
        assert any(c.page == page and c.text.startswith(opening) for c in documented), (
            f"{page} has no python block opening {opening!r}: drop it from FRAGMENTS"
        )


def test_the_pages_give_commands_and_the_readme_starts_the_server() -> None:
    readme = commands("README.md")
    assert starts_a_server(readme[0]), readme[0]
    assert sum(1 for c in every_command() if not not_run(c)) >= 25  # the parser finds them


@pytest.mark.parametrize("words", sorted(inline_subcommands()), ids=" ".join)
def test_each_teaser_subcommand_named_in_prose_exists(words: tuple[str, ...]) -> None:
    # The parser `teaser` itself runs; --help exits 0 only for a command it knows.
    where = inline_subcommands()[words]
    answer, complaint = io.StringIO(), io.StringIO()
    with redirect_stdout(answer), redirect_stderr(complaint), pytest.raises(SystemExit) as ended:
        cli_parser().parse_args([*words, "--help"])
    assert ended.value.code == 0, f"{where}: `teaser {' '.join(words)}`: {complaint.getvalue()}"
    assert "usage: teaser" in answer.getvalue()
