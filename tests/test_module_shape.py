"""Every module in src/mlgate fits in a reader's head (issue 13): at most 400 lines, and a first
docstring line that says what it is."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mlgate"
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_is_longer_than_a_reader_holds() -> None:
    long = {
        str(path.relative_to(SRC)): lines
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"


def test_every_module_says_what_it_is() -> None:
    silent = [
        str(path.relative_to(SRC))
        for path in _modules()
        if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert not silent, f"modules without a first docstring line: {silent}"
