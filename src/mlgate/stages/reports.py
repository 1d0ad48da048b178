"""Report files stages read (JUnit XML, pytest-benchmark JSON): one rule for every path option."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path


def expand(workdir: Path, patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The files the patterns name, and the patterns that named none."""
    paths: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        full = workdir / pattern
        matches = sorted(glob.glob(str(full), recursive=True)) if glob.has_magic(pattern) else []
        if matches:
            paths.extend(Path(m) for m in matches)
        elif full.exists():
            paths.append(full)
        else:
            missing.append(pattern)
    return list(dict.fromkeys(paths)), missing


def older_than(paths: Sequence[Path], started: datetime) -> list[Path]:
    """Reports not written since `started` (a second of slack for coarse file times): left over
    from an earlier run, they would describe other code."""
    return [p for p in paths if p.stat().st_mtime < started.timestamp() - 1]
