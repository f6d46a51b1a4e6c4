"""Each site's rules, from $TEASER_RULES_DIR/<site id>.toml or the shipped defaults.
Edited files are picked up without a restart; a broken edit is refused, logged, and the
last good rules stay in force."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from realtime.platform.errors import RulesError
from realtime.targeting.rules import RuleSet, default_rules, load_rules

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


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None
