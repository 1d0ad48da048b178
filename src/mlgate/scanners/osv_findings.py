"""Findings about dependencies, the same for every scanner: one per OSV advisory affecting a
package version, and one per package that could not be audited."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from packaging.utils import canonicalize_name

from mlgate.evidence import Finding
from mlgate.scanners.interface import Source, fingerprint
from mlgate.scanners.osv import Advisory


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


def unaudited_finding(
    package: str,
    reason: str,
    *,
    tool: str,
    source: Source,
    version: str | None = None,
    image: str | None = None,
    path: str | None = None,
    line: int | None = None,
    detail: str | None = None,
) -> Finding:
    """A Finding for `package` (in `image`, at `version`) that could not be audited: a gap in
    the evidence, never a pass."""
    named = f"{package} {version}" if version else package
    # In an image the gap is that version in that image; in a project it is the package,
    # whatever its pin.
    where = () if image is None else (version, image)
    return Finding(
        id=f"unaudited:{package}",
        severity="unknown",
        message=f"{named} was not audited for vulnerabilities: {reason}",
        rule="unaudited-dependency",
        path=path,
        line=line,
        detail=detail,
        tool=tool,
        source=source,
        package=package,
        version=version,
        image=image,
        fingerprint=fingerprint("unaudited-dependency", canonicalize_name(package), *where),
    )


def vulnerability_key(advisory_id: str, aliases: Iterable[str]) -> str:
    """The id the same vulnerability has in every database: its first CVE, else its own id."""
    cves = sorted(a for a in (advisory_id, *aliases) if a.startswith("CVE-"))
    return cves[0] if cves else advisory_id


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
