"""What the two model-file engines (model_files: picklescan with our reading; fickling_scan)
share: a scanner of the model targets, the engine's import, the deadline, and a finding's shape."""

from __future__ import annotations

import importlib
import time
from typing import Any, ClassVar

from mlgate.evidence import Finding, Severity
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import Scanner, ScanTargets, Source, fingerprint

SOURCE: Source = "model"
# The rule of a model file an engine cannot read to its end: never a silent pass.
UNSCANNABLE = "unscannable-model"


class ModelEngine(Scanner):
    """A scanner whose targets are the configured model files and directories."""

    sources: ClassVar[tuple[Source, ...]] = (SOURCE,)

    def applies(self, targets: ScanTargets) -> bool:
        return bool(targets.models)


def import_engine(tool: str, module: str, install: str) -> Any:
    """The engine's module; a missing engine is an error, never a skipped scan."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ScanError(f"{tool}: not installed ({install})") from None


def check_deadline(tool: str, deadline: float, timeout: float) -> None:
    """Between files: a scan that overran its time is an error, not a partial pass."""
    if time.monotonic() > deadline:
        raise ScanError(f"{tool}: timed out after {timeout:g} s")


def model_finding(
    tool: str,
    rule: str,
    severity: Severity,
    shown: str,
    message: str,
    *,
    title: str,
    key: str = "",
    finding_id: str | None = None,
    detail: str | None = None,
) -> Finding:
    """A finding about the model file `shown`; `key` tells apart findings of one rule in one
    file (an import's name, a layer), and the id is `tool:rule` unless given."""
    return Finding(
        id=finding_id or f"{tool}:{rule}",
        severity=severity,
        message=message,
        rule=rule,
        path=shown,
        title=title,
        detail=detail,
        tool=tool,
        source=SOURCE,
        fingerprint=fingerprint(tool, rule, shown, key),
    )
