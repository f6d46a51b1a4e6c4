"""Each site's rules, from $TEASER_RULES_DIR/<site id>.toml or the shipped defaults.
Edited files are picked up without a restart; a broken edit is refused, logged, and the
last good rules stay in force."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from realtime.platform.errors import RulesError
from realtime.platform.ids import check_site_id
from realtime.targeting.rules import DEFAULT_RULES, RULES_SCHEMA, RuleSet, default_rules, load_rules

logger = logging.getLogger("teaser.rules")


@dataclass
class _Loaded:
    rules: RuleSet
    mtime: float | None
    checked_at: float


class RuleBook:
    def __init__(self, directory: Path | None, *, check_interval: float = 2.0) -> None:
        self.directory = directory
        self.check_interval = check_interval
        self.defaults = default_rules()
        self._loaded: dict[str, _Loaded] = {}

    def path_for(self, site_id: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{site_id}.toml"

    def file_in_force(self, site_id: str) -> Path | None:
        """The site's own rules file, if it has one; None when the defaults apply."""
        path = self.path_for(site_id)
        return path if path is not None and _mtime(path) is not None else None

    def site_files(self) -> list[Path]:
        """Every site's rules file in the directory, by name."""
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.toml"))

    def write_defaults(self, site_id: str, *, force: bool = False) -> Path:
        """Write the shipped defaults as the site's rules file, to edit; an existing file is
        kept unless `force`. Its first line points editors at the JSON Schema."""
        check_site_id(site_id, "site id")  # it names a file: no '/' or '..' in it
        path = self.path_for(site_id)
        if path is None:
            raise RulesError("TEASER_RULES_DIR is empty, so no site has a rules file of its own")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"#:schema {_schema_relative_to(path.parent)}\n{DEFAULT_RULES.read_text('utf-8')}"
        try:
            with path.open("w" if force else "x", encoding="utf-8") as file:
                file.write(text)
        except FileExistsError:
            raise RulesError(f"{path} exists already; --force replaces it") from None
        return path

    def for_site(self, site_id: str) -> RuleSet:
        now = time.monotonic()
        loaded = self._loaded.get(site_id)
        if loaded is not None and now - loaded.checked_at < self.check_interval:
            return loaded.rules
        path = self.path_for(site_id)
        mtime = _mtime(path)
        if loaded is not None and mtime == loaded.mtime:
            loaded.checked_at = now
            return loaded.rules
        rules = self._read(site_id, path, mtime, fallback=loaded.rules if loaded else None)
        self._loaded[site_id] = _Loaded(rules, mtime, now)
        return rules

    def _read(
        self, site_id: str, path: Path | None, mtime: float | None, fallback: RuleSet | None
    ) -> RuleSet:
        if path is None or mtime is None:
            return self.defaults
        try:
            rules = load_rules(path)
        except RulesError as exc:
            kept = fallback or self.defaults
            logger.error("rules for site %s refused, keeping %s: %s", site_id, kept.source, exc)
            return kept
        logger.info("rules for site %s loaded from %s", site_id, path)
        return rules


def _schema_relative_to(directory: Path) -> str:
    """The schema's path from `directory`, as Taplo reads a `#:schema` line."""
    schema = Path(str(RULES_SCHEMA)).resolve()
    return Path(os.path.relpath(schema, directory.resolve())).as_posix()


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None
