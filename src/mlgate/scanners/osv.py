"""Offline vulnerability data in the OSV format (https://ossf.github.io/osv-schema/).

`OsvDatabase.load` reads a directory of OSV records (the PyPA advisory database is YAML, one file
per record) or a zip of them (OSV's per-ecosystem `all.zip` is JSON, one member per record), and
answers "which advisories affect this PyPI package at this version". `osv_server.serve` puts the
same data behind an OSV-compatible HTTP endpoint on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate import safe_yaml
from mlgate.evidence import Severity
from mlgate.scanners.errors import ScanError
from mlgate.scanners.osv_severity import record_severity

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
PYPI = "PyPI"


@dataclass(frozen=True)
class Advisory:
    """One OSV record as it applies to one package version."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    fixed_versions: tuple[str, ...]  # fixes later than the version asked about, oldest first
    severity: Severity  # critical, high, medium, low or unknown


class OsvDatabase:
    """OSV records loaded into memory, indexed by PEP 503 name of the PyPI packages they affect."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self._records = records
        # Canonical JSON of each record: the digest is over it, and the endpoint serves it.
        self._canonical = {record_id: _canonical_json(rec) for record_id, rec in records.items()}
        self.records = len(records)
        self.digest = "sha256:" + _digest(self._canonical)
        self._by_package: dict[str, list[str]] = {}
        for record_id in sorted(records):
            record = records[record_id]
            if record.get("withdrawn"):
                continue  # withdrawn advisories are kept for the digest, never matched
            names = {canonicalize_name(name) for name in _pypi_names(record)}
            for name in names:
                self._by_package.setdefault(name, []).append(record_id)

    @classmethod
    def load(cls, path: Path) -> OsvDatabase:
        """Read every OSV record under `path`: a directory (recursively), a .zip, or one file."""
        if not path.exists():
            raise ScanError(f"osv database: {path}: no such file or directory")
        records: dict[str, dict[str, Any]] = {}
        for origin, text in _record_texts(path):
            record = _parse_record(origin, text)
            record_id = record["id"]
            known = records.get(record_id)
            # The same id twice (a record in two files): keep the newest, whatever the file order.
            if known is None or _newer(record, known):
                records[record_id] = record
        if not records:
            raise ScanError(f"osv database: {path}: no OSV records (.json/.yaml files) found")
        return cls(path, records)

    def vulnerabilities(self, package: str, version: str) -> list[Advisory]:
        """The advisories affecting PyPI `package` at `version`, by id."""
        name = canonicalize_name(package)
        found = []
        for record_id in self._by_package.get(name, ()):
            advisory = _match(self._records[record_id], name, version)
            if advisory is not None:
                found.append(advisory)
        return found

    def matching_ids(self, package: str, version: str | None) -> list[str]:
        """Record ids for an OSV query; without a version, every record naming the package."""
        if version is None:
            return list(self._by_package.get(canonicalize_name(package), ()))
        return [advisory.id for advisory in self.vulnerabilities(package, version)]

    def record_json(self, record_id: str) -> str:
        return self._canonical[record_id]

    def modified(self, record_id: str) -> str:
        return str(self._records[record_id].get("modified", ""))

    def has(self, record_id: str) -> bool:
        return record_id in self._records


# --- matching -------------------------------------------------------------------------------


def _match(record: dict[str, Any], name: str, version: str) -> Advisory | None:
    """The advisory if some `affected[]` entry for PyPI `name` covers `version`."""
    parsed = _version(version)
    affected_here = False
    fixes: set[Version] = set()
    for affected in _dicts(record.get("affected")):
        package = affected.get("package")
        if not isinstance(package, dict) or package.get("ecosystem") != PYPI:
            continue
        if canonicalize_name(str(package.get("name", ""))) != name:
            continue
        ranges = [r for r in _dicts(affected.get("ranges")) if r.get("type") == "ECOSYSTEM"]
        in_ranges = parsed is not None and any(_in_range(parsed, r) for r in ranges)
        if in_ranges or _listed(version, parsed, affected.get("versions")):
            affected_here = True
            fixes.update(_later_fixes(ranges, parsed))
    if not affected_here:
        return None
    summary = record.get("summary")
    details = record.get("details")
    return Advisory(
        id=record["id"],
        aliases=tuple(str(alias) for alias in _list(record.get("aliases"))),
        summary=" ".join(str(summary).split()) if summary else "",
        details=str(details).strip() if details else "",
        fixed_versions=tuple(str(fix) for fix in sorted(fixes)),
        severity=record_severity(record),
    )


def _in_range(version: Version, ecosystem_range: dict[str, Any]) -> bool:
    """The OSV evaluation: walk the events in version order; the last one at or below `version`
    decides (introduced: affected; fixed: not; last_affected: not above it)."""
    events: list[tuple[Version | None, str]] = []  # None sorts first: introduced "0"
    for event in _dicts(ecosystem_range.get("events")):
        for kind in ("introduced", "fixed", "last_affected"):
            if kind in event:
                value = str(event[kind])
                bound = None if kind == "introduced" and value == "0" else _version(value)
                if bound is None and value != "0":
                    return False  # a bound that is not PEP 440: this range cannot be judged
                events.append((bound, kind))
    events.sort(key=lambda item: (item[0] is not None, item[0] or Version("0")))
    affected = False
    for bound, kind in events:
        if kind == "introduced":
            affected = affected or bound is None or version >= bound
        # A fixed version is not affected itself; a last_affected one still is.
        elif bound is not None and (version > bound or (kind == "fixed" and version == bound)):
            affected = False
    return affected


def _listed(version: str, parsed: Version | None, versions: object) -> bool:
    for listed in _list(versions):
        text = str(listed)
        if text == version:
            return True
        listed_version = _version(text)
        if parsed is not None and listed_version is not None and listed_version == parsed:
            return True
    return False


def _later_fixes(ranges: list[dict[str, Any]], version: Version | None) -> Iterator[Version]:
    for ecosystem_range in ranges:
        for event in _dicts(ecosystem_range.get("events")):
            fixed = _version(str(event["fixed"])) if "fixed" in event else None
            if fixed is not None and (version is None or fixed > version):
                yield fixed


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _pypi_names(record: dict[str, Any]) -> Iterator[str]:
    for affected in _dicts(record.get("affected")):
        package = affected.get("package")
        if isinstance(package, dict) and package.get("ecosystem") == PYPI and package.get("name"):
            yield str(package["name"])


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _record_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of every record file in a directory, zip or single file."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
            if file.is_file() and file.suffix.lower() in RECORD_SUFFIXES and not hidden:
                yield str(file), _decode(str(file), _read_bytes(file))
    elif path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for member in sorted(archive.namelist()):
                    if not member.endswith("/") and member.lower().endswith(RECORD_SUFFIXES):
                        where = f"{path}:{member}"
                        yield where, _decode(where, archive.read(member))
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise ScanError(f"osv database: {path}: not a readable zip file ({exc})") from None
        except OSError as exc:
            raise ScanError(f"osv database: {path}: cannot read ({exc.strerror or exc})") from None
    elif path.suffix.lower() in RECORD_SUFFIXES:
        yield str(path), _decode(str(path), _read_bytes(path))
    else:
        raise ScanError(
            f"osv database: {path}: expected a directory, a .zip or a .json/.yaml OSV record"
        )


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ScanError(f"osv database: {file}: cannot read ({exc.strerror or exc})") from None


def _decode(where: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScanError(f"osv database: {where}: not UTF-8 text") from None


def _parse_record(where: str, text: str) -> dict[str, Any]:
    try:
        if where.lower().endswith(".json"):
            record = json.loads(text)
        else:
            # Timestamps stay text, as in JSON, so a record has the same content (and digest)
            # in either format.
            record = safe_yaml.load(text, timestamps_as_text=True)
    except json.JSONDecodeError as exc:
        raise ScanError(
            f"osv database: {where}: invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    except safe_yaml.YamlError as exc:
        raise ScanError(f"osv database: {where}: invalid YAML{exc.where}: {exc.problem}") from None
    if not isinstance(record, dict):
        raise ScanError(f"osv database: {where}: not an OSV record (expected a mapping)")
    if not isinstance(record.get("id"), str) or not record["id"].strip():
        raise ScanError(f"osv database: {where}: OSV record without an id")
    return record


def _canonical_json(record: dict[str, Any]) -> str:
    # default=str: a YAML scalar that JSON has no type for stays its text.
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _digest(canonical: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for record_id in sorted(canonical):
        digest.update(record_id.encode())
        digest.update(b"\x00")
        digest.update(canonical[record_id].encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _newer(candidate: dict[str, Any], known: dict[str, Any]) -> bool:
    """Order duplicates by `modified`, then content, so which one wins never depends on order."""
    return (str(candidate.get("modified", "")), _canonical_json(candidate)) > (
        str(known.get("modified", "")),
        _canonical_json(known),
    )


# --- the local OSV endpoint -----------------------------------------------------------------
