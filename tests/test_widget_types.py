"""widget/teaser-widget.d.ts type-checks a page's use of the widget, refuses its misuse, and
declares exactly the names widget.js implements."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable

import pytest

from realtime.delivery import Priority
from tests.support import ROOT

WIDGET_JS = (ROOT / "widget" / "widget.js").read_text()
DECLARATIONS = (ROOT / "widget" / "teaser-widget.d.ts").read_text()
TYPES_DIR = ROOT / "tests" / "widget_types"
TSC = TYPES_DIR / "node_modules" / "typescript" / "bin" / "tsc"


def tsc_or_skip() -> list[str]:
    """The pinned compiler; .ci/run installs it, so only a local run may skip."""
    node = shutil.which("node")
    if node and TSC.is_file():
        return [node, str(TSC)]
    message = "tsc is not installed (run `npm ci` in tests/widget_types)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " and CI=true requires it", pytrace=False)
    pytest.skip(message)


def test_a_page_using_the_declarations_type_checks_and_its_marked_misuse_is_refused() -> None:
    # tsc reports an `@ts-expect-error` whose next line compiles, so this fails both ways.
    command = [*tsc_or_skip(), "-p", str(TYPES_DIR), "--noEmit", "--strict", "--pretty", "false"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- widget.js, read as text: the names it implements ----


def keys_of(literal: str) -> set[str]:
    """The keys of a flat JS object literal such as `{ ok: true, count: n }`."""
    return set(re.findall(r"[{,]\s*(\w+)\s*:", literal))


def first(pattern: str) -> str:
    found = re.search(pattern, WIDGET_JS, re.DOTALL)
    assert found, f"widget.js no longer matches {pattern!r}"
    return found.group(1)


def installed_members() -> set[str]:
    block = first(r"window\.TeaserWidget = Object\.freeze\((.*?)\n  \}\)\);")
    return set(re.findall(r"^ {4}(\w+):", block, re.MULTILINE))


def poll_result_fields() -> set[str]:
    each = [keys_of(literal) for literal in re.findall(r"onPoll\((\{[^}]*\})\)", WIDGET_JS)]
    assert each and all(fields == each[0] for fields in each), each
    return each[0]


def dispatched_on(target: str) -> set[str]:
    """The CustomEvents widget.js dispatches on `window` or on `document`."""
    found = re.findall(
        r"(\[window, document\]\.forEach\(function \(target\) \{\s*target|window)"
        r"\.dispatchEvent\(new CustomEvent\('([^']+)'",
        WIDGET_JS,
    )
    return {name for targets, name in found if target in targets}


IMPLEMENTED: dict[str, Callable[[], set[str]]] = {
    "Widget": installed_members,
    "Events": lambda: keys_of(first(r"var handlers = (\{[^}]*\})")),
    "Message": lambda: keys_of(first(r"var message = (\{.*?\});")),
    "PollResult": poll_result_fields,
    "ClickDetail": lambda: keys_of(first(r"var detail = (\{[^}]*\})")),
    "TeaserFrame": lambda: set(re.findall(r"\bframe\.(\w+)", WIDGET_JS)),
    "Dataset": lambda: set(re.findall(r"(?<![.\w])data\.(\w+)", WIDGET_JS)),
    "WindowEventMap": lambda: dispatched_on("window"),
    "DocumentEventMap": lambda: dispatched_on("document"),
}


# ---- teaser-widget.d.ts, read as text: the names it declares ----


def declared_members(interface: str) -> set[str]:
    found = re.search(
        rf"^( *)interface {interface} \{{\n(.*?)^\1\}}", DECLARATIONS, re.MULTILINE | re.DOTALL
    )
    assert found, f"teaser-widget.d.ts declares no interface {interface}"
    member = r"^\s*(?:readonly )?'?([\w:-]+)'?\??:"
    return set(re.findall(member, found.group(2), re.MULTILINE))


def declared_union(alias: str) -> set[str]:
    found = re.search(rf"^\s*type {alias} = ([^;]*);", DECLARATIONS, re.MULTILINE)
    assert found, f"teaser-widget.d.ts declares no type {alias}"
    return set(re.findall(r"'([^']*)'", found.group(1)))


@pytest.mark.parametrize("interface", IMPLEMENTED)
def test_each_declared_interface_has_the_names_widget_js_implements(interface: str) -> None:
    implemented = IMPLEMENTED[interface]()
    assert implemented, f"found nothing in widget.js for {interface}"
    assert declared_members(interface) == implemented


def test_the_declared_transports_are_the_states_of_widget_js() -> None:
    states = set(re.findall(r"'(\w+)'", first(r"var State = (\{[^}]*\})")))
    assert declared_union("Transport") == states


def test_the_declared_priorities_are_the_servers() -> None:
    assert declared_union("Priority") == {priority.value for priority in Priority}


def test_every_declared_interface_is_checked_against_widget_js() -> None:
    assert set(re.findall(r"^\s*interface (\w+)", DECLARATIONS, re.MULTILINE)) == set(IMPLEMENTED)


def test_the_usage_file_names_every_declared_member() -> None:
    usage = (TYPES_DIR / "usage.ts").read_text()
    for interface in IMPLEMENTED:
        for member in declared_members(interface):
            assert re.search(rf"\b{re.escape(member)}\b", usage), f"{interface}.{member} unused"


def test_the_compiler_is_pinned_exactly_and_locked_without_a_registry_host() -> None:
    pinned = json.loads((TYPES_DIR / "package.json").read_text())["devDependencies"]
    locked = json.loads((TYPES_DIR / "package-lock.json").read_text())["packages"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["typescript"]), pinned
    assert locked["node_modules/typescript"]["version"] == pinned["typescript"]
    assert all("resolved" not in package for package in locked.values()), locked
    assert "://" not in (TYPES_DIR / "package-lock.json").read_text()
