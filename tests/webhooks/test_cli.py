"""`teaser webhook`: add prints the number and the secret once, list shows the state and
the last delivery, rotate, test and remove; a private address is refused unless allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import run_teaser_cli


def test_the_cli_adds_lists_rotates_tests_and_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEASER_WEBHOOK_ALLOW_PRIVATE", "true")
    database = tmp_path / "teaser.db"
    assert run_teaser_cli(database, "site", "add", "acme").returncode == 0

    added = run_teaser_cli(
        database, "webhook", "add", "acme", "http://127.0.0.1:9/hook", "--events",
        "teaser.delivered,teaser.clicked",
    )  # fmt: skip
    listed = run_teaser_cli(database, "webhook", "list", "acme")
    rotated = run_teaser_cli(database, "webhook", "rotate", "acme", "1")
    tested = run_teaser_cli(database, "webhook", "test", "acme", "1")
    removed = run_teaser_cli(database, "webhook", "remove", "acme", "1")
    missing = run_teaser_cli(database, "webhook", "rotate", "acme", "1")

    assert "webhook endpoint 1 of site acme added" in added.stdout, added.stderr
    assert re.search(r"signing secret \(shown once, store it now\): whsec_\S{44}", added.stdout)
    assert listed.stdout.startswith("1\thttp://127.0.0.1:9/hook\tteaser.delivered,teaser.clicked")
    assert "enabled" in listed.stdout and "last delivery never" in listed.stdout
    assert "new signing secret" in rotated.stdout and "until" in rotated.stdout
    assert "teaser.test queued for endpoint 1 (webhook-id evt_test_" in tested.stdout
    assert removed.returncode == 0 and missing.returncode == 1
    assert "no webhook endpoint 1" in missing.stderr


def test_the_cli_refuses_a_private_address_unless_allowed(tmp_path: Path) -> None:
    database = tmp_path / "teaser.db"
    run_teaser_cli(database, "site", "add", "acme")

    refused = run_teaser_cli(database, "webhook", "add", "acme", "http://10.0.0.7/hook")

    assert refused.returncode == 1
    assert "loopback or private address" in refused.stderr
    assert "TEASER_WEBHOOK_ALLOW_PRIVATE" in refused.stderr
