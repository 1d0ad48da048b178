"""Which model (and version) a report is about, for its header: from the evidence that names the
candidate (quality resolves a registry URI to its version; load names the URI it served), else
the config's model name. Every value may come from evidence: renderers escape it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mlgate.evidence import Evidence

_REGISTRY_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))?")


@dataclass(frozen=True)
class Subject:
    model: str | None = None
    version: str | None = None  # a number, or "alias NAME" when only the alias is known
    uri: str | None = None

    def line(self) -> str:
        """E.g. 'iris version 3 (models:/iris/3)'; "" when nothing is known."""
        parts = [self.model or "model"]
        if self.version:
            parts.append(f"version {self.version}")
        if self.uri and self.uri != self.model:
            parts.append(f"({self.uri})")
        return " ".join(parts) if (self.model or self.uri) else ""


def of(evidence: Mapping[str, Evidence], model_name: str | None = None) -> Subject:
    quality = evidence.get("quality")
    if quality is not None:
        candidate = quality.data.get("candidate")
        if isinstance(candidate, dict):
            found = _described(candidate)
            if found.model or found.uri:
                return Subject(found.model or model_name, found.version, found.uri)
    load = evidence.get("load")
    if load is not None:
        serve = load.data.get("serve")
        uri = serve.get("model_uri") if isinstance(serve, dict) else None
        if isinstance(uri, str):
            found = _from_uri(uri)
            return Subject(found.model or model_name, found.version, uri)
    return Subject(model_name)


def _described(candidate: dict[str, object]) -> Subject:
    name, version = candidate.get("registered_model"), candidate.get("version")
    uri = candidate.get("resolved") or candidate.get("uri")
    shown = uri if isinstance(uri, str) else None
    if isinstance(name, str):
        return Subject(name, str(version) if isinstance(version, (str, int)) else None, shown)
    return _from_uri(shown) if shown else Subject()


def _from_uri(uri: str) -> Subject:
    match = _REGISTRY_URI.fullmatch(uri)
    if match is None:
        return Subject(None, None, uri)
    version = match["version"] or (f"alias {match['alias']}" if match["alias"] else None)
    return Subject(match["name"], version, uri)
