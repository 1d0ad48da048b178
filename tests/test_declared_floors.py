"""Declared versions are tested versions: every floor a user installs from pyproject.toml (the
dependencies and every extra but `dev`) and from the example's requirements.txt is the version
constraints/lowest.txt pins, which scripts/test-lowest.sh installs and tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")


def pinned() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9a-z.]*)", line.strip())
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def floors(requirements: list[str]) -> dict[str, Version]:
    """The `>=` floor of each requirement that names a version, by package."""
    found: dict[str, Version] = {}
    for text in requirements:
        requirement = Requirement(text)
        for specifier in requirement.specifier:
            if specifier.operator == ">=":
                found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def declared() -> list[tuple[str, str, Version]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"]}
    groups |= {
        f"extra {name}": requirements
        for name, requirements in project["optional-dependencies"].items()
        if name != "dev"  # developer tools (ruff, mypy, act...) are not what users install
    }
    example = ROOT / "examples" / "iris" / "requirements.txt"
    lines = [line.split("#")[0].strip() for line in example.read_text().splitlines()]
    groups["examples/iris/requirements.txt"] = [line for line in lines if line]
    return [
        (where, name, floor)
        for where, requirements in groups.items()
        for name, floor in floors(requirements).items()
    ]


def test_every_declared_floor_is_the_version_the_lowest_run_tests() -> None:
    pins = pinned()
    rows = declared()
    assert len(rows) >= 25, rows  # the dependencies, the extras and the example were all read
    untested = [
        f"{where}: {name}>={floor} (constraints/lowest.txt: {pins.get(name, 'no pin')})"
        for where, name, floor in rows
        if pins.get(name) != floor
    ]
    assert not untested, "\n".join(untested)
