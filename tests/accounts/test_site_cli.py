"""`teaser site …` and `teaser key …` as an operator runs them: a subprocess on a real
database, in the order the docs give them."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT


def teaser(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def key_of(created: subprocess.CompletedProcess[str]) -> str:
    assert created.returncode == 0, created.stderr
    return created.stdout.split("store it now): ")[1].strip()


def test_key_revoke_acme_1_revokes_acmes_first_key_beside_the_demo_site(
    database_url: str,
) -> None:
    teaser(database_url, "site", "add", "woodstock_outlet")  # as dev mode's demo site does
    first = key_of(teaser(database_url, "site", "add", "acme"))
    added = teaser(database_url, "key", "add", "acme")

    revoked = teaser(database_url, "key", "revoke", "acme", "1")
    again = teaser(database_url, "key", "revoke", "acme", "1")
    listed = teaser(database_url, "key", "list", "acme")

    assert "key 2 of site acme added" in added.stdout
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "key 1 of site acme revoked"
    assert again.returncode == 1
    assert "site acme has no active key 1 (`teaser key list acme`" in again.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(line[0], line[1], line[3].split(" ")[0]) for line in lines] == [
        ("1", f"{first[:6]}…", "revoked"),
        ("2", f"{key_of(added)[:6]}…", "active"),
    ]


def test_site_origins_adds_removes_and_replaces_and_refuses_what_is_no_origin(
    sqlite_url: str,
) -> None:
    teaser(sqlite_url, "site", "create", "acme", "--origin", "https://shop.acme.example")

    added = teaser(sqlite_url, "site", "origins", "acme", "--add", "http://localhost:3000/")
    removed = teaser(sqlite_url, "site", "origins", "acme", "--remove", "https://shop.acme.example")
    path = teaser(sqlite_url, "site", "origins", "acme", "--add", "https://shop.example/cart")
    mixed = teaser(
        sqlite_url, "site", "origins", "acme", "https://a.example", "--add", "https://b.example"
    )
    replaced = teaser(sqlite_url, "site", "origins", "acme", "https://www.acme.example")

    assert added.stdout.strip() == (
        "site acme allows: https://shop.acme.example http://localhost:3000"
    )
    assert removed.stdout.strip() == "site acme allows: http://localhost:3000"
    assert path.returncode == 1
    assert "'https://shop.example/cart' is not an origin" in path.stderr
    assert "scheme://host[:port]" in path.stderr
    assert mixed.returncode == 2 and "not both" in mixed.stderr
    assert replaced.stdout.strip() == "site acme allows: https://www.acme.example"
