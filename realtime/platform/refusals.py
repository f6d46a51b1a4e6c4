"""msgspec's words for a value it refused, taken apart: what is wrong and where. Each wing
then says it in its readers' words (the API in JSON's, a rules file in TOML's)."""

from __future__ import annotations

import re

import msgspec

WHERE = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
MISSING_FIELD = re.compile(r"^Object missing required field `(?P<key>[^`]+)`$")
UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")


def problem_and_path(error: msgspec.ValidationError) -> tuple[str, str]:
    """`Expected int - at $.template[2].weight` as ("Expected int", "template[2].weight");
    the path is empty for the top level."""
    found = WHERE.match(str(error))
    assert found is not None  # the pattern matches any text
    return found["detail"], (found["path"] or "").removeprefix(".")
