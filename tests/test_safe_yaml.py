"""Hostile YAML in every file mlgate reads but did not write (mlgate.yml, waivers, OSV records):
alias bombs, deep nesting, self-referring aliases and repeated keys are one-line errors (exit 2
from the CLI), never minutes of work, gigabytes, a RecursionError or a silently merged key."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import mlgate as mlgate_package
from mlgate import config, waivers
from mlgate.errors import ConfigError
from mlgate.scanners.errors import ScanError
from mlgate.scanners.osv import OsvDatabase


def alias_bomb(levels: int = 9) -> str:
    """'Billion laughs': each level is nine aliases of the one before (9**9 strings)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# Quoted in full by the error message about the version (a minute and 3 GB, then MemoryError).
BOMB_IN_CONFIG = "version: *l8\n"
DEEP = "card:\n  purpose: " + "[" * 3000 + "]" * 3000 + "\n"
TWO_POLICIES = (
    "stages:\n  tests: {}\n"
    "policy:\n  tests: {max_failures: 0}\n"
    "report: {comment: always}\n"
    "policy:\n  tests: {max_failures: 5}\n"
)


def _limit_memory() -> None:
    # The old loader expanded a bomb until memory ran out: cap it, so a regression fails
    # quickly here instead of taking the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def mlgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *args],
        cwd=cwd,
        # The mlgate this test imports (this checkout's, or the one PYTHONPATH names).
        env={**os.environ, "PYTHONPATH": str(Path(mlgate_package.__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb() + BOMB_IN_CONFIG, r"values once aliases are expanded \(an alias bomb\?\)$"),
        # libyaml stops at its own depth (1000), the pure-Python parser at ours (100).
        (DEEP, r"(exceeded maximum nesting depth|nested more than 100 levels deep)$"),
        (TWO_POLICIES, r"invalid YAML at line 6, column 1: duplicate key 'policy'$"),
    ],
    ids=["alias-bomb", "deep-nesting", "duplicate-key"],
)
def test_hostile_config_is_a_one_line_error_exit_2(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "mlgate.yml").write_text(text)
    result = mlgate("config", "check", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mlgate: error: mlgate.yml: invalid YAML"), result.stderr
    assert re.search(problem, result.stderr.strip()), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb(), "an alias bomb?"),
        ("a: " + "[" * 150 + "]" * 150 + "\n", "nested more than 100 levels deep"),
        ("".join("  " * i + f"k{i}:\n" for i in range(150)), "nested more than 100 levels"),
        ("a: &a [1, *a]\n", "an alias refers to the value that contains it"),
        ("a:\n  b: 1\n  c: 2\n  b: 3\n", "at line 4, column 3: duplicate key 'b'"),
        ("1: x\n0x1: y\n", "duplicate key 1"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
    ],
)
def test_what_the_loader_refuses(text: str, problem: str) -> None:
    from mlgate import safe_yaml

    with pytest.raises(safe_yaml.YamlError) as caught:
        safe_yaml.load(text)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_aliases_and_merge_keys_within_bounds_still_load() -> None:
    from mlgate import safe_yaml

    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\nsame: *b\nwhen: 2026-01-02\n"
    loaded = safe_yaml.load(text)
    assert loaded["other"] == {"x": 3, "y": 2} and loaded["same"] == {"x": 1, "y": 2}
    assert str(loaded["when"]) == "2026-01-02"
    assert safe_yaml.load(text, timestamps_as_text=True)["when"] == "2026-01-02"
    assert safe_yaml.load("") is None
    nine_levels = "".join("  " * i + f"k{i}:\n" for i in range(90)) + "  " * 90 + "v: 1\n"
    assert safe_yaml.load(nine_levels) is not None


def test_a_second_policy_section_is_refused_not_merged(tmp_path: Path) -> None:
    path = tmp_path / "mlgate.yml"
    path.write_text(TWO_POLICIES)
    with pytest.raises(ConfigError, match=r"line 6, column 1: duplicate key 'policy'$"):
        config.load(path)


def test_hostile_waivers_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    waiver = "  - id: X\n    scope: {package: a}\n    reason: r\n    owner: o\n"
    path.write_text(f"waivers:\n{waiver}    expires: 2027-01-01\n    expires: 2099-01-01\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 7.*duplicate key 'expires'"):
        waivers.load(path)
    path.write_text(alias_bomb() + "waivers: *l8\n")
    with pytest.raises(ConfigError, match="an alias bomb"):
        waivers.load(path)


def test_hostile_osv_records_are_refused(tmp_path: Path) -> None:
    record = tmp_path / "PYSEC-1.yaml"
    record.write_text("id: PYSEC-1\naffected: []\naffected: [{package: {name: x}}]\n")
    with pytest.raises(ScanError, match=r"PYSEC-1\.yaml: invalid YAML at line 3.*duplicate key"):
        OsvDatabase.load(record)
    record.write_text(alias_bomb() + "id: PYSEC-1\naffected: *l8\n")
    with pytest.raises(ScanError, match="an alias bomb"):
        OsvDatabase.load(record)
