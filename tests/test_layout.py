"""The package's layout keeps its promises: dependencies point one way, modules stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "room_recovery"
BASE = {"rules", "protocol"}
SERVICES = BASE | {"core"}
# Which of the package's folders each folder may import (see docs/architecture.md).
ALLOWED: dict[str, set[str]] = {
    "rules": set(),
    "protocol": set(),
    "core": BASE,
    "agent": SERVICES,
    "watchdog": SERVICES,
    "web": SERVICES,
    "doctor": SERVICES,
    "system": SERVICES,
    "demo": SERVICES | {"agent"},
    "cli": SERVICES | {"system", "watchdog", "web", "doctor", "demo", "agent"},
}
HEAVY = ("livekit.agents", "livekit.rtc", "numpy")  # the extras' packages
EXTRAS = {"agent", "demo"}
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def folder_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def imported(path: Path) -> set[str]:
    """Absolute names of what `path` imports (relative imports resolved)."""
    package = ["room_recovery", *path.relative_to(PACKAGE).parts[:-1]]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
            if isinstance(node.module, str) and node.module.startswith("livekit"):
                names.update(f"livekit.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_imports_only_the_folders_below_it(folder: str) -> None:
    for path in modules():
        if folder_of(path) != folder:
            continue
        used = {
            name.split(".")[1]
            for name in imported(path)
            if name.startswith("room_recovery.") and name.split(".")[1] in ALLOWED
        }
        wrong = used - ALLOWED[folder] - {folder}
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_only_the_extras_import_livekit_agents_rtc_or_numpy() -> None:
    for path in modules():
        if folder_of(path) in EXTRAS:
            continue
        heavy = {name for name in imported(path) if name.startswith(HEAVY)}
        assert not heavy, f"{path.relative_to(PACKAGE)} imports {sorted(heavy)} (an extra's)"


def test_no_module_is_longer_than_one_sitting() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES + 20
    }
    assert not long, f"split these by what they hold: {long}"
