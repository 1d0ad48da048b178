"""Offline vulnerability data in the OSV format (https://ossf.github.io/osv-schema/).

`OsvDatabase.load` reads a directory of OSV records (the PyPA advisory database is YAML, one file
per record) or a zip of them (OSV's per-ecosystem `all.zip` is JSON, one member per record), and
answers "which advisories affect this PyPI package at this version". `serve` puts the same data
behind an OSV-compatible HTTP endpoint on 127.0.0.1, so tools that only speak the OSV API
(pip-audit) can audit without the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate import safe_yaml
from mlgate.evidence import Finding, Severity
from mlgate.scanners.interface import ScanError, Source, fingerprint

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
PYPI = "PyPI"
_SEVERITY_NAMES: dict[str, Severity] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MODERATE": "medium",  # GitHub's word for medium
    "MEDIUM": "medium",
    "LOW": "low",
}


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

    def _matching_ids(self, package: str, version: str | None) -> list[str]:
        """Record ids for an OSV query; without a version, every record naming the package."""
        if version is None:
            return list(self._by_package.get(canonicalize_name(package), ()))
        return [advisory.id for advisory in self.vulnerabilities(package, version)]

    def _record_json(self, record_id: str) -> str:
        return self._canonical[record_id]

    def _modified(self, record_id: str) -> str:
        return str(self._records[record_id].get("modified", ""))

    def _has(self, record_id: str) -> bool:
        return record_id in self._records


def advisory_from_pip_audit(vuln: dict[str, Any]) -> Advisory:
    """An advisory as pip-audit's JSON reports it (one entry of a dependency's `vulns`); that
    JSON carries no severity."""
    description = " ".join(str(vuln.get("description") or "").split())
    return Advisory(
        id=str(vuln.get("id")),
        aliases=tuple(str(alias) for alias in vuln.get("aliases") or ()),
        summary="",
        details="" if description == "N/A" else description,
        fixed_versions=tuple(str(fix) for fix in vuln.get("fix_versions") or ()),
        severity="unknown",
    )


def advisory_finding(
    advisory: Advisory,
    package: str,
    version: str,
    *,
    tool: str,
    source: Source,
    image: str | None = None,
    path: str | None = None,
    line: int | None = None,
) -> Finding:
    """A Finding for `package` `version` being affected by `advisory`."""
    headline = _headline(advisory)
    alias = _preferred_alias(advisory)
    named = f"{advisory.id} ({alias})" if alias else advisory.id
    fix = (
        f"fixed in {', '.join(advisory.fixed_versions)}"
        if advisory.fixed_versions
        else "no fixed version"
    )
    message = f"{package} {version} has {named}" + (f": {headline}" if headline else "")
    return Finding(
        id=advisory.id,
        severity=advisory.severity,
        message=f"{message}; {fix}",
        rule="vulnerable-dependency",
        path=path,
        line=line,
        title=advisory.summary or f"{named} in {package}",
        detail=advisory.details or None,
        tool=tool,
        source=source,
        aliases=list(advisory.aliases),
        package=package,
        version=version,
        fixed_versions=list(advisory.fixed_versions),
        image=image,
        # Not the tool, and the CVE rather than the database's own id where there is one: the
        # same vulnerability reported by two scanners (PYSEC from one, GHSA from another) is
        # then one finding.
        fingerprint=fingerprint(
            "vulnerable-dependency",
            vulnerability_key(advisory.id, advisory.aliases),
            canonicalize_name(package),
            version,
            image,
        ),
    )


def vulnerability_key(advisory_id: str, aliases: Iterable[str]) -> str:
    """The id the same vulnerability has in every database: its first CVE, else its own id."""
    cves = sorted(a for a in (advisory_id, *aliases) if a.startswith("CVE-"))
    return cves[0] if cves else advisory_id


# --- CVSS -----------------------------------------------------------------------------------

_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
# Privileges required weigh more when the scope changes.
_CVSS3_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/v3.1 base score of `vector` (e.g. "CVSS:3.1/AV:N/AC:L/..."), or None when it
    is not a complete v3 vector. Formula from the CVSS v3.1 specification, section 7.1."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics = dict(part.split(":", 1) for part in parts[1:] if ":" in part)
    try:
        scope = metrics["S"]
        privileges = _CVSS3_PRIVILEGES[scope][metrics["PR"]]
        weight = {key: table[metrics[key]] for key, table in _CVSS3_WEIGHTS.items()}
    except KeyError:
        return None
    impact_subscore = 1 - (1 - weight["C"]) * (1 - weight["I"]) * (1 - weight["A"])
    if scope == "U":
        impact = 6.42 * impact_subscore
    else:
        impact = 7.52 * (impact_subscore - 0.029) - 3.25 * (impact_subscore - 0.02) ** 15
    exploitability = 8.22 * weight["AV"] * weight["AC"] * privileges * weight["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _roundup(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest one-decimal number >= value, immune to float noise."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def severity_from_score(score: float) -> Severity:
    """CVSS qualitative rating; a 0.0 ("none") still is a published advisory, so it counts low."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def record_severity(record: dict[str, Any]) -> Severity:
    """From the worst CVSS v3 vector in `severity[]`, else a `database_specific.severity` name,
    else unknown (most PyPA records carry no score; the stage policy decides what that counts)."""
    scores = []
    for entry in _dicts(record.get("severity")):
        # CVSS v4 scoring needs the specification's macro-vector tables; a v4-only record falls
        # through to database_specific (GitHub sets it) or unknown.
        if entry.get("type") == "CVSS_V3" and isinstance(entry.get("score"), str):
            score = cvss3_base_score(entry["score"])
            if score is not None:
                scores.append(score)
    if scores:
        return severity_from_score(max(scores))
    specific = record.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        return _SEVERITY_NAMES.get(specific["severity"].upper(), "unknown")
    return "unknown"


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


def _headline(advisory: Advisory) -> str:
    """One short line: the summary, else the first sentence of the details."""
    text = advisory.summary or " ".join(advisory.details.split())
    if not advisory.summary:
        text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    text = text if len(text) <= 200 else text[:199].rstrip() + "…"
    return text.rstrip(".")  # the message goes on after it


def _preferred_alias(advisory: Advisory) -> str | None:
    cves = [a for a in advisory.aliases if a.startswith("CVE-")]
    return cves[0] if cves else (advisory.aliases[0] if advisory.aliases else None)


# --- loading --------------------------------------------------------------------------------


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


@contextlib.contextmanager
def serve(db: OsvDatabase) -> Iterator[str]:
    """Serve `db` as an OSV API on 127.0.0.1 (a free port, a background thread) and yield its
    base URL, e.g. "http://127.0.0.1:41234"; the query endpoint is that + "/v1/query".

    Answers POST /v1/query and POST /v1/querybatch as api.osv.dev does (PyPI only; queries by
    package name and version or by pkg:pypi purl), and GET /v1/vulns/<id>."""

    class Handler(_OsvHandler):
        database = db

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="osv-endpoint"
    )
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QueryError(Exception):
    pass


class _OsvHandler(BaseHTTPRequestHandler):
    database: ClassVar[OsvDatabase]
    protocol_version = "HTTP/1.1"  # keep-alive: pip-audit sends one request per package
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK, ~40 ms per package.
    disable_nagle_algorithm = True
    _MAX_BODY = 16 << 20

    def do_POST(self) -> None:
        try:
            query = self._json_body()
            if self.path == "/v1/query":
                self._send(200, self._query_response(query))
            elif self.path == "/v1/querybatch":
                self._send(200, self._batch_response(query))
            else:
                self._send_error(404, f"no such endpoint: {self.path}")
        except _QueryError as exc:
            self._send_error(400, str(exc))

    def do_GET(self) -> None:
        prefix = "/v1/vulns/"
        record_id = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
        if record_id and self.database._has(record_id):
            self._send(200, self.database._record_json(record_id))
        else:
            self._send_error(404, "Bug not found.")

    def _query_response(self, query: object) -> str:
        ids = self._query_ids(query)
        # osv.dev answers {} when nothing matches; pip-audit relies on that too.
        if not ids:
            return "{}"
        return '{"vulns":[' + ",".join(self.database._record_json(i) for i in ids) + "]}"

    def _batch_response(self, body: object) -> str:
        queries = body.get("queries") if isinstance(body, dict) else None
        if not isinstance(queries, list):
            raise _QueryError("expected {'queries': [...]}")
        results = []
        for query in queries:
            # The batch API returns ids and modification times only; clients fetch the rest.
            vulns = [
                {"id": i, "modified": self.database._modified(i)} for i in self._query_ids(query)
            ]
            results.append({"vulns": vulns} if vulns else {})
        return json.dumps({"results": results})

    def _query_ids(self, query: object) -> list[str]:
        if not isinstance(query, dict):
            raise _QueryError("a query must be a JSON object")
        package = query.get("package")
        if not isinstance(package, dict):
            raise _QueryError("a query needs a package")
        version = query.get("version")
        name = package.get("name")
        ecosystem = package.get("ecosystem")
        purl = package.get("purl")
        if isinstance(purl, str) and purl:
            match = re.fullmatch(r"pkg:pypi/([^@?#]+)(?:@([^?#]+))?(?:[?#].*)?", purl)
            if match is None:
                return []  # another ecosystem: not in this database
            name, version = match.group(1), match.group(2) or version
            ecosystem = PYPI
        if ecosystem != PYPI or not isinstance(name, str):
            return []
        if version is not None and not isinstance(version, str):
            raise _QueryError("version must be a string")
        return self.database._matching_ids(name, version)

    def _json_body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self._MAX_BODY:
            raise _QueryError("request body too large")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _QueryError(f"invalid JSON: {exc}") from None

    def _send(self, status: int, payload: str) -> None:
        body = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"code": status, "message": message}))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a scan's output is its findings, not an access log."""
