"""pip requirements files read as pip would: whether every requirement is pinned with `==`, the
files they include with `-r`, and where each package is declared (file and line)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlgate.scanners.errors import ScanError

TOOL = "pip-audit"  # the scanner whose errors these are


# Options that take a value as the next word when written without "=".
_INCLUDE_OPTIONS = ("-r", "--requirement")
_CONSTRAINT_OPTIONS = ("-c", "--constraint")
_EDITABLE_OPTIONS = ("-e", "--editable")
# Per-requirement options (--hash=..., --config-settings ...) start after the requirement.
_TRAILING_OPTIONS = re.compile(r"\s+--?[A-Za-z]")
_COMMENT = re.compile(r"(^|\s+)#.*$")


@dataclass(frozen=True)
class Declared:
    """Where a requirements file declares a package, for the finding's path and line."""

    path: Path
    line: int


@dataclass(frozen=True)
class Requirements:
    pinned: bool  # every requirement is `name==version`: auditable without resolving
    declared: dict[str, Declared]  # canonical name -> first declaration
    # The file and the files it includes with -r. pip follows includes when it resolves;
    # pip-audit's --no-deps reads only the files it is given, so it gets them all.
    files: tuple[Path, ...]


def read_requirements(path: Path) -> Requirements:
    """Whether `path` (and the files it includes) pins every requirement with `==`, and where
    each package is declared. A line that is not a requirement pip would accept is a ScanError
    here, with its line number, instead of a pip-audit failure later."""
    declared: dict[str, Declared] = {}
    files: list[Path] = []
    pinned = _scan_file(path, declared, files)
    return Requirements(pinned=pinned, declared=declared, files=tuple(files))


def _scan_file(path: Path, declared: dict[str, Declared], files: list[Path]) -> bool:
    if any(path.resolve() == seen.resolve() for seen in files):
        return True  # included twice, or an include cycle: read once
    files.append(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScanError(f"{TOOL}: requirements file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScanError(f"{TOOL}: cannot read requirements file {path}: {problem}") from None
    pinned = True
    for number, line in _logical_lines(text):
        option, value = _option(line)
        if option in _INCLUDE_OPTIONS:
            pinned &= _scan_file(path.parent / value, declared, files)
        elif option in _EDITABLE_OPTIONS:
            pinned = False  # an editable project has no version to audit without building it
        elif option is not None:
            continue  # index, constraint and other pip options do not add requirements
        else:
            requirement = _requirement(path, number, line)
            if requirement is None:
                pinned = False  # a local path or URL: pip has to build it to know its version
                continue
            if not _applies_here(requirement):
                continue  # pip-audit skips it as well
            declared.setdefault(canonicalize_name(requirement.name), Declared(path, number))
            pinned &= _is_pinned(requirement)
    return pinned


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, line) with comments removed and continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = "".join([*pending, line]).strip()
        pending = []
        if joined:
            yield start, joined
    if pending and "".join(pending).strip():
        yield start, "".join(pending).strip()


def _option(line: str) -> tuple[str | None, str]:
    """("-r", "base.txt") for "-r base.txt", "-rbase.txt" or "--requirement=base.txt"."""
    match = re.match(r"(--[A-Za-z][A-Za-z-]*|-[A-Za-z])\s*=?\s*(.*)", line)
    if match is None:
        return None, ""
    return match.group(1), match.group(2).strip()


def _requirement(path: Path, number: int, line: str) -> Requirement | None:
    text = _TRAILING_OPTIONS.split(line, maxsplit=1)[0].strip()
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        if re.search(r"[/\\]|://|^\.|\.(whl|zip|tar\.gz|tgz)$", text):
            return None
        problem = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
        raise ScanError(
            f"{TOOL}: {path}:{number}: not a valid requirement {text!r}: {problem}"
        ) from None


def _applies_here(requirement: Requirement) -> bool:
    if requirement.marker is None:
        return True
    try:
        return requirement.marker.evaluate()
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True  # let pip-audit judge a marker we cannot


def _is_pinned(requirement: Requirement) -> bool:
    """`name==1.2.3` exactly (no wildcard, no second specifier), the form pip-audit's --no-deps
    audits."""
    if requirement.url is not None:
        # `name @ url` names one artifact: nothing to resolve, yet no version to audit either;
        # pip-audit reports it as skipped, which becomes an unaudited-dependency finding.
        return True
    specifiers = list(requirement.specifier)
    return (
        len(specifiers) == 1
        and specifiers[0].operator == "=="
        and not specifiers[0].version.endswith("*")
    )
