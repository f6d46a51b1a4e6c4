"""`teaser rules init / check / simulate` as docs/scoring.md gives them, on a fresh checkout
with no rules folder: a subprocess on a real SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def rules_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}",
        "TEASER_RULES_DIR": str(tmp_path / "rules"),
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "rules", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_documented_rules_commands_run_in_order_on_a_fresh_checkout(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules" / "woodstock_outlet.toml"

    before = rules_command(tmp_path, "check", "--site", "woodstock_outlet")
    init = rules_command(tmp_path, "init", "woodstock_outlet")
    in_force = rules_command(tmp_path, "check", "--site", "woodstock_outlet")
    checked = rules_command(tmp_path, "check", str(rules_file))
    simulated = rules_command(
        tmp_path, "simulate", str(rules_file), "--site", "woodstock_outlet", "--minutes", "60"
    )

    assert before.returncode == 0, before.stderr
    assert "has no" in before.stdout and "the shipped defaults apply: ok" in before.stdout
    assert init.returncode == 0, init.stderr
    assert str(rules_file) in init.stdout
    assert rules_file.read_text().startswith("#:schema ")
    assert in_force.stdout.strip().startswith(f"site woodstock_outlet uses {rules_file}: ok")
    assert checked.returncode == 0 and f"{rules_file}: ok" in checked.stdout
    assert simulated.returncode == 0, simulated.stderr
    assert f"with {rules_file}" in simulated.stdout


def test_init_keeps_an_edited_file_unless_forced(tmp_path: Path) -> None:
    rules_command(tmp_path, "init", "acme")
    rules_file = tmp_path / "rules" / "acme.toml"
    rules_file.write_text("edited = true\n")

    again = rules_command(tmp_path, "init", "acme")
    kept = rules_file.read_text()
    forced = rules_command(tmp_path, "init", "acme", "--force")

    assert again.returncode == 1
    assert f"{rules_file} exists already; --force replaces it" in again.stderr
    assert kept == "edited = true\n"
    assert forced.returncode == 0 and "[[template]]" in rules_file.read_text()


def test_check_without_a_file_checks_the_defaults_and_every_sites_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "beta.toml").write_text("[[template]]\nid = 'x'\n")

    everything = rules_command(tmp_path, "check")
    beta = rules_command(tmp_path, "check", "--site", "beta")
    outside = rules_command(tmp_path, "init", "../outside")

    assert everything.returncode == 1
    assert "the shipped defaults, for sites without a file: ok" in everything.stdout
    assert "site beta: error:" in everything.stderr and "needs situation" in everything.stderr
    assert "keeps the last good version" in everything.stderr
    assert beta.returncode == 1 and "site beta uses" in beta.stderr
    assert outside.returncode == 1 and "site id" in outside.stderr
    assert not (tmp_path / "outside.toml").exists()
