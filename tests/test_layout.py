"""The plan of the house holds: realtime/ is eight wings whose imports run one way, no
module imports itself round in a circle, and api/ sees only each wing's public face."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

WINGS = (
    "platform",
    "fanout",
    "accounts",
    "delivery",
    "targeting",
    "insight",
    "contract",
    "webhooks",
)
# What each part of realtime/ may import, besides itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "platform": frozenset(),
    "fanout": frozenset({"platform"}),
    "delivery": frozenset({"fanout", "platform"}),
    "targeting": frozenset({"delivery", "fanout", "platform"}),
    "accounts": frozenset({"platform"}),
    "insight": frozenset({"delivery", "platform"}),
    # Webhooks read what the other wings wrote to the outbox (in platform), nothing more.
    "webhooks": frozenset({"platform"}),
    # The wire sits on top: it turns bodies into the wings' own objects and back.
    "contract": frozenset({"delivery", "targeting", "insight", "webhooks", "platform"}),
    "migrations": frozenset({"platform"}),
    "runtime": frozenset({*WINGS, "migrations"}),
}
# Insight reads what delivery stored, so it knows a teaser's priority, and nothing else.
ONLY_NAMES = {("insight", "delivery"): frozenset({"Priority"})}
# Outside realtime/, api/ may reach past a face only for these.
API_MAY_IMPORT = frozenset({"realtime.runtime", "realtime.migrations.migrate"})


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a package means its __init__)
    names: tuple[str, ...]
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(source, base, tuple(a.name for a in node.names), node.lineno)


def project_imports(root: Path, folder: str) -> list[Import]:
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        found += [i for i in imports_of(path, root) if i.target.split(".")[0] == "realtime"]
    return found


def part_of(module: str) -> str:
    """The wing (or runtime, or migrations) a realtime module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "realtime"


def wrong_directions(root: Path) -> list[str]:
    problems = []
    for each in project_imports(root, "realtime"):
        here, there = part_of(each.source), part_of(each.target)
        if here == there or there == "realtime":
            continue
        where = f"{each.source}:{each.line} imports {each.target}"
        if there not in MAY_IMPORT.get(here, frozenset()):
            problems.append(f"{where}: {here} may not import {there}")
        elif (narrow := ONLY_NAMES.get((here, there))) and not set(each.names) <= narrow:
            problems.append(f"{where}: {here} may take only {sorted(narrow)} from {there}")
    return problems


def circles(root: Path) -> list[list[str]]:
    """Import cycles between realtime's modules (a package stands for its __init__)."""
    graph: dict[str, set[str]] = {}
    for each in project_imports(root, "realtime"):
        graph.setdefault(each.source, set()).add(each.target)
        # `from realtime.fanout import broker` may name a submodule.
        graph[each.source] |= {f"{each.target}.{name}" for name in each.names}
    known = set(graph)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, set()) & known):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(known):
        if module not in state:
            visit(module, [module])
    return found


def faces_bypassed(root: Path) -> list[str]:
    problems = []
    for each in project_imports(root, "api"):
        parts = each.target.split(".")
        if each.target in API_MAY_IMPORT or (len(parts) == 2 and parts[1] in WINGS):
            continue
        problems.append(f"{each.source}:{each.line} imports {each.target}, not a wing's face")
    return problems


def http_in_the_domain(root: Path) -> list[str]:
    return [
        f"{module_name(path, root)}:{node.lineno}"
        for path in sorted((root / "realtime").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            name.split(".")[0] == "starlette"
            for name in [getattr(node, "module", None) or "", *(a.name for a in node.names)]
        )
    ]


def test_realtime_is_eight_wings_and_the_runtime() -> None:
    packages = {p.name for p in (ROOT / "realtime").iterdir() if (p / "__init__.py").exists()}
    modules = {p.name for p in (ROOT / "realtime").glob("*.py")}
    assert packages == {*WINGS, "migrations"}
    assert modules == {"__init__.py", "runtime.py"}


def test_each_wing_names_its_public_face() -> None:
    for wing in WINGS:
        face = ast.parse((ROOT / "realtime" / wing / "__init__.py").read_text())
        exported = [
            n
            for n in face.body
            if isinstance(n, ast.Assign)
            and any(getattr(t, "id", "") == "__all__" for t in n.targets)
        ]
        assert exported, f"realtime/{wing}/__init__.py has no __all__"


def test_imports_between_wings_run_one_way() -> None:
    assert wrong_directions(ROOT) == []


def test_no_module_imports_itself_round_in_a_circle() -> None:
    assert circles(ROOT) == []


def test_api_sees_only_each_wings_public_face() -> None:
    assert faces_bypassed(ROOT) == []


def test_the_domain_knows_nothing_of_http() -> None:
    assert http_in_the_domain(ROOT) == []


# --- The checks above can fail ----------------------------------------------------------


@pytest.fixture
def house(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "realtime", tmp_path / "realtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "api", tmp_path / "api", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def plant(house: Path, module: str, line: str) -> None:
    path = house / module
    path.write_text(path.read_text() + f"\n{line}\n")


def test_a_planted_upward_import_is_found(house: Path) -> None:
    plant(house, "realtime/platform/clock.py", "from realtime.targeting.rules import RuleSet")
    [problem] = wrong_directions(house)
    assert "realtime.platform.clock" in problem and "platform may not import targeting" in problem


def test_a_planted_sideways_import_is_found(house: Path) -> None:
    plant(house, "realtime/accounts/sites.py", "from realtime.delivery.teaser import Teaser")
    assert any("accounts may not import delivery" in p for p in wrong_directions(house))


def test_insight_taking_more_than_a_priority_from_delivery_is_found(house: Path) -> None:
    plant(house, "realtime/insight/journey.py", "from realtime.delivery import TeaserStore")
    assert any("may take only ['Priority']" in p for p in wrong_directions(house))


def test_a_planted_circle_is_found(house: Path) -> None:
    plant(house, "realtime/delivery/teaser.py", "from realtime.delivery.store import TeaserStore")
    found = circles(house)
    assert any(c[0] == c[-1] and "realtime.delivery.teaser" in c for c in found), found


def test_api_reaching_past_a_face_is_found(house: Path) -> None:
    plant(house, "api/health.py", "from realtime.delivery.store import TeaserStore")
    assert faces_bypassed(house) == [
        "api.health:"
        + str(len((house / "api/health.py").read_text().splitlines()))
        + " imports realtime.delivery.store, not a wing's face"
    ]


def test_starlette_in_the_domain_is_found(house: Path) -> None:
    plant(house, "realtime/insight/journey.py", "from starlette.requests import Request")
    assert len(http_in_the_domain(house)) == 1
