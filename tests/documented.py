"""The commands the README and docs give, read out of their fenced code blocks.

A shell block (```sh, ```bash, ```shell) yields one command per line, a line ending in
`\\` joined to the next; a ```python block is one command. Comments stay in: bash reads
them as comments, so a command runs exactly as a reader would paste it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

# Every page a newcomer is sent to, in the order the README sends them.
PAGES = (
    "README.md",
    "docs/operations.md",
    "docs/scoring.md",
    "docs/webhooks.md",
    "docs/dashboard.md",
    "docs/api.md",
    "docs/configuration.md",
    "docs/scaling.md",
    "docs/deploy.md",
    "docs/proxies.md",
    "docs/metrics.md",
    "docs/guarantees.md",
    "docs/benchmarks.md",
    "docs/layout.md",
    "widget/README.md",
    "clients/python/README.md",
    "bench/README.md",
)
SHELL = {"sh", "bash", "shell"}
FENCE = re.compile(r"^```(\S*)\s*$")
# `teaser site origins SITE --add ORIGIN`, `.venv/bin/teaser rules init SITE` in prose.
INLINE = re.compile(r"`(?:\.venv/bin/|/\S+/bin/)?teaser ([^`]+)`")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    language: str  # "sh" or "python"
    text: str

    @property
    def words(self) -> list[str]:
        """The command's words as the shell splits them (comments dropped)."""
        try:
            return shlex.split(self.text, comments=True)
        except ValueError:
            return self.text.split()

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def commands(page: str) -> list[Command]:
    found: list[Command] = []
    language: str | None = None
    block: list[tuple[int, str]] = []
    for number, line in enumerate((ROOT / page).read_text().splitlines(), start=1):
        fence = FENCE.match(line)
        if language is None:
            if fence:
                language, block = fence.group(1) or "text", []
        elif fence:
            found.extend(_block(page, language, block))
            language = None
        else:
            block.append((number, line))
    return found


def _block(page: str, language: str, lines: list[tuple[int, str]]) -> list[Command]:
    if language == "python" and lines:
        return [Command(page, lines[0][0], "python", "\n".join(text for _, text in lines))]
    if language not in SHELL:
        return []
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for number, text in lines:
        if not pending:
            start = number
        if text.rstrip().endswith("\\"):
            pending.append(text.rstrip()[:-1].rstrip())
            continue
        joined = " ".join([*pending, text.strip()]).strip()
        pending = []
        if joined and not joined.startswith("#"):
            found.append(Command(page, start, "sh", joined))
    return found


def every_command() -> list[Command]:
    return [command for page in PAGES for command in commands(page)]


def inline_subcommands() -> dict[tuple[str, ...], str]:
    """Each `teaser …` named in prose, cut before its first placeholder: words → where."""
    named: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for number, line in enumerate((ROOT / page).read_text().splitlines(), start=1):
            for match in INLINE.finditer(line):
                words: list[str] = []
                for word in match.group(1).split():
                    if not re.fullmatch(r"[a-z][a-z-]*", word):
                        break  # SITE, <id>, --flag, a URL, …: the reader's part
                    words.append(word)
                if words:
                    named.setdefault(tuple(words), f"{page}:{number}")
    return named


def copy_of_checkout(target: Path, *, with_venv: bool = False) -> None:
    """A fresh clone of this checkout as it stands: its tracked (and new, unignored) files,
    with their times, and none of what running it leaves behind (teaser.db, rules/, .env)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if not with_venv:
        return
    # The installed environment, and a stamp newer than pyproject.toml so script/bootstrap
    # finds it installed (as it would after a first run), without touching the real venv.
    (target / ".venv").mkdir()
    for part in (ROOT / ".venv").iterdir():
        if not part.name.startswith(".installed"):
            (target / ".venv" / part.name).symlink_to(part)
    (target / ".venv/.installed").touch()
