"""Scanners for the scan stage: each turns one kind of target into the one `Finding` model.

The registry of scanners. Adding a scanner: write its module, add one line here.
"""

from __future__ import annotations

from mlgate.extensions import by_name
from mlgate.scanners.bandit import BanditScanner
from mlgate.scanners.fickling_scan import FicklingScanner
from mlgate.scanners.image import ImageScanner
from mlgate.scanners.interface import Scanner
from mlgate.scanners.model_files import ModelFileScanner
from mlgate.scanners.pip_audit import PipAuditScanner

SCANNERS: dict[str, Scanner] = by_name(
    BanditScanner(),
    PipAuditScanner(),
    ImageScanner(),
    ModelFileScanner(),
    FicklingScanner(),
)
