"""An installed Python environment (a site-packages directory) read from its distributions'
*.dist-info / *.egg-info metadata, without running anything in it."""

from __future__ import annotations

import email.parser
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate.scanners.errors import ScanError

TOOL = "pip-audit"  # the scanner whose errors these are


@dataclass(frozen=True)
class Installed:
    """One distribution in an environment, as its metadata names it."""

    name: str  # as METADATA writes it, else as its directory's name does
    version: str
    metadata: Path  # METADATA or PKG-INFO: where a user finds the installation


@dataclass(frozen=True)
class Environment:
    path: Path
    installed: tuple[Installed, ...]

    def find(self, name: str, version: str) -> Installed | None:
        """The distribution pip-audit reported as `name` `version`; the first of that name when
        the directory holds it twice (a broken upgrade leaves an old dist-info behind)."""
        same = [d for d in self.installed if canonicalize_name(d.name) == canonicalize_name(name)]
        exact = [d for d in same if normalized_version(d.version) == normalized_version(version)]
        matches = exact or same
        return matches[0] if matches else None


def read_environment(path: Path) -> Environment:
    """The distributions installed in `path` by their *.dist-info / *.egg-info metadata. None at
    all is a ScanError: an empty environment is almost certainly a wrong path, not a clean one."""
    if not path.exists():
        raise ScanError(f"{TOOL}: environment not found: {path}")
    if not path.is_dir():
        raise ScanError(f"{TOOL}: environment is not a directory: {path}")
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ScanError(f"{TOOL}: cannot read environment {path}: {exc.strerror}") from None
    installed = []
    for entry in entries:
        metadata = _metadata_file(entry)
        if metadata is not None:
            name, version = _name_and_version(metadata)
            # Without a Name, pip takes it from the directory name ({name}-{version}.dist-info).
            name = name or entry.name.split("-", 1)[0]
            installed.append(Installed(name, version, metadata))
    if not installed:
        raise ScanError(
            f"{TOOL}: no installed distributions (*.dist-info, *.egg-info) in environment {path}"
        )
    return Environment(path, tuple(installed))


def _metadata_file(entry: Path) -> Path | None:
    if entry.suffix == ".dist-info" and entry.is_dir():
        return entry / "METADATA"
    if entry.suffix == ".egg-info":
        # setuptools writes a directory with PKG-INFO; distutils wrote the file itself.
        return entry / "PKG-INFO" if entry.is_dir() else entry
    return None


def _name_and_version(metadata: Path) -> tuple[str, str]:
    """Name and Version from the metadata headers; empty when unreadable (pip then skips the
    distribution, and it becomes an unaudited finding)."""
    try:
        text = metadata.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", ""
    headers = email.parser.HeaderParser().parsestr(text)
    return str(headers.get("Name") or "").strip(), str(headers.get("Version") or "").strip()


def normalized_version(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version
