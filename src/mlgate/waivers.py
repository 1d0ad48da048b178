"""Waivers: accepted findings, each with a scope, a reason, an owner and an expiry date.

`.mlgate/waivers.yml`::

    waivers:
      - id: PYSEC-2019-217          # advisory id or any alias (CVE-...), or a rule id (B301)
        scope: {package: jinja2}    # package, path (glob) and/or image (glob): all must match
        reason: not reachable, we render no untrusted templates
        owner: "@ml-platform"
        expires: 2026-12-31
        allow_critical: false       # a critical finding is only waived with this set to true

A waiver waives until the end of its expiry day (UTC); from the next day it stops waiving and
the gate fails, naming its owner. Waived findings stay in every report, marked as waived.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlgate import actions_env, safe_yaml
from mlgate.errors import ConfigError
from mlgate.evidence import Finding

# Overrides today's date (YYYY-MM-DD): for tests, and to re-judge evidence as of a past day;
# never inside GitHub Actions.
TODAY_VARIABLE = "MLGATE_TODAY"


class WaiverScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: str | None = Field(default=None, description="Package name (PEP 503 normalised).")
    path: str | None = Field(default=None, description="Glob on the finding's path.")
    image: str | None = Field(default=None, description="Glob on the image reference.")

    @model_validator(mode="after")
    def _something(self) -> WaiverScope:
        if self.package is None and self.path is None and self.image is None:
            raise ValueError("scope needs package, path or image")
        return self


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    scope: WaiverScope
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expires: date
    allow_critical: bool = False

    @field_validator("id", "reason", "owner")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # A blank owner or reason is an unaccountable waiver: " " must not hide a finding.
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    def label(self) -> str:
        return f"{self.id} (owner {self.owner})"

    def covers(self, finding: Finding) -> bool:
        """Same id or alias, and every scope key matches."""
        ids = {finding.id.lower(), *(a.lower() for a in finding.aliases)}
        if self.id.lower() not in ids:
            return False
        scope = self.scope
        if scope.package is not None and (
            finding.package is None or _normalise(finding.package) != _normalise(scope.package)
        ):
            return False
        if scope.path is not None and (
            finding.path is None or not fnmatch.fnmatchcase(finding.path, scope.path)
        ):
            return False
        return scope.image is None or (
            finding.image is not None and fnmatch.fnmatchcase(finding.image, scope.image)
        )

    def expired(self, today: date) -> bool:
        return today > self.expires

    def record(self) -> dict[str, str]:
        """What a waived finding carries in evidence."""
        return {
            "id": self.id,
            "owner": self.owner,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
        }


class WaiversFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    waivers: list[Waiver] = Field(default_factory=list)


@dataclass
class Applied:
    findings: list[Finding]  # every finding; the waived ones carry waived_by
    expired: list[Waiver]  # expired waivers: they waive nothing, and fail the gate
    unused: list[Waiver]  # live waivers that matched no finding
    refused: list[tuple[Waiver, Finding]]  # would hide a critical finding without the flag


def load(path: Path) -> list[Waiver]:
    """Read and validate a waivers file; any problem is one ConfigError line naming it."""
    return _validated(safe_yaml.load_file(path, "waivers"), str(path))


def parse(text: str, source: str) -> list[Waiver]:
    """Validate a waivers file read elsewhere (through the API); any problem is one ConfigError
    line naming `source`."""
    return _validated(safe_yaml.load_text(text, source), source)


def _validated(document: Any, source: str) -> list[Waiver]:
    if document is None:
        return []
    try:
        return WaiversFile.model_validate(document).waivers
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _location(document, error["loc"])
        raise ConfigError(f"{source}: {where}: {error['msg']}") from None


def apply(waivers: list[Waiver], findings: list[Finding], today: date) -> Applied:
    live = [w for w in waivers if not w.expired(today)]
    used: set[int] = set()
    refused: list[tuple[Waiver, Finding]] = []
    result = []
    for finding in findings:
        waiver = None
        for index, candidate in enumerate(live):
            if not candidate.covers(finding):
                continue
            if finding.severity == "critical" and not candidate.allow_critical:
                refused.append((candidate, finding))
                continue
            used.add(index)
            waiver = candidate
            break
        result.append(finding.model_copy(update={"waived_by": waiver.record() if waiver else None}))
    refused_ids = {id(w) for w, _ in refused}
    unused = [w for i, w in enumerate(live) if i not in used and id(w) not in refused_ids]
    return Applied(
        findings=result,
        expired=[w for w in waivers if w.expired(today)],
        unused=unused,
        refused=refused,
    )


def today() -> date:
    """Today (UTC), or the date MLGATE_TODAY names (refused inside GitHub Actions)."""
    override = os.environ.get(TODAY_VARIABLE, "").strip()
    if override:
        if actions_env.in_actions():
            # A gate run that sets the date could revive expired waivers.
            raise ConfigError(
                f"{TODAY_VARIABLE} is set, but a gate inside GitHub Actions judges waivers by "
                f"today's date: unset {TODAY_VARIABLE} (it is for tests and local re-judging)"
            )
        try:
            return date.fromisoformat(override)
        except ValueError:
            raise ConfigError(f"{TODAY_VARIABLE}={override!r} is not a date (YYYY-MM-DD)") from None
    return datetime.now(timezone.utc).date()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _location(document: object, loc: tuple[int | str, ...]) -> str:
    """'waivers[2] (id PYSEC-...).expires' for messages."""
    parts: list[str] = []
    node = document
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node):
                node = node[key]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label += f" (id {node['id']})"
            parts.append(label)
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "top level"
