"""Registered models as scan targets: what is served and promoted, not a local stand-in.

`models:/NAME@ALIAS` and `models:/NAME/VERSION` in the scan config's `models` are resolved in
the MLflow registry, and the version's files are downloaded from the storage location the
registry gives for it — the files the load and quality stages load and a promotion bundle
digests — into a fresh directory that every model engine scans. Each target is recorded in the
scan evidence's `data["model_targets"]` as an identity:

    {"uri": "models:/iris@candidate", "resolved": "models:/iris/2",
     "registered_model": "iris", "version": "2", "digest": "sha256:..."}

where `digest` is `files_digest` of exactly the files scanned, so a promotion can require that
the version it promotes was scanned (its files digest equal), and a clean local file never
stands in for it. An unreachable registry, an unknown model or version, or an alias that is
not set is an error naming the URI (fail closed).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlgate.errors import MlgateError
from mlgate.evidence import Finding

REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))/?")
PREFIX = "models:/"
DATA_KEY = "model_targets"


@dataclass(frozen=True)
class RegisteredTarget:
    uri: str  # as configured
    name: str
    version: str
    digest: str  # files_digest of the downloaded (and scanned) files
    directory: Path  # where they were downloaded

    @property
    def resolved(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def identity(self) -> dict[str, str]:
        return {
            "uri": self.uri,
            "resolved": self.resolved,
            "registered_model": self.name,
            "version": self.version,
            "digest": self.digest,
        }


def is_registry_uri(entry: str) -> bool:
    return entry.startswith(PREFIX)


def check_uri(entry: str) -> str:
    """A config validator: a models:/ entry must name a version or an alias."""
    if is_registry_uri(entry) and REGISTERED.fullmatch(entry) is None:
        raise ValueError(
            f"{entry!r} is not a registered model URI: use models:/NAME@ALIAS or "
            "models:/NAME/VERSION"
        )
    return entry


def fetch(uris: list[str], tracking_uri: str | None, destination: Path) -> list[RegisteredTarget]:
    """Resolve each URI to its version and download that version's files under destination."""
    if not uris:
        return []
    from mlgate.registry.mlflow_registry import Registry, RegistryError, files_digest

    try:
        registry = Registry.connect(tracking_uri)
    except RegistryError as exc:
        raise MlgateError(f"model {uris[0]}: {exc}") from None
    targets: list[RegisteredTarget] = []
    for uri in uris:
        match = REGISTERED.fullmatch(uri)
        if match is None:  # the config validator refuses these; evidence never guesses
            raise MlgateError(f"model {uri}: not a registered model URI")
        name, alias, version = match.group("name", "alias", "version")
        try:
            if alias is not None:
                version = registry.alias(name, alias)
                if version is None:
                    raise MlgateError(f"model {uri}: alias {alias} of model {name} is not set")
            # The registry's own spelling of the version (models:/NAME/01 is version 1).
            version = registry.model_version(name, version).version
            directory = destination / _safe(name) / version
            if directory.exists():
                shutil.rmtree(directory)  # only what this version holds now is scanned
            files = registry.download_model(name, version, directory)
        except RegistryError as exc:
            raise MlgateError(f"model {uri}: {exc}") from None
        targets.append(RegisteredTarget(uri, name, version, files_digest(files), directory))
    return targets


def _safe(name: str) -> str:
    """A registered model's name as one directory name."""
    return re.sub(r"[^\w.-]", "_", name).lstrip(".") or "_"


def relabel(finding: Finding, targets: list[RegisteredTarget], workdir: Path) -> Finding:
    """A finding in a downloaded version, named by the version (models:/NAME/V/FILE), not by
    the download directory; its fingerprint (from the stable directory) is kept."""
    for target in targets:
        try:
            prefix = target.directory.resolve().relative_to(workdir.resolve()).as_posix()
        except ValueError:
            prefix = target.directory.as_posix()
        if finding.path and (finding.path == prefix or finding.path.startswith(prefix + "/")):
            return finding.model_copy(
                update={
                    "path": target.resolved + finding.path[len(prefix) :],
                    "message": finding.message.replace(prefix, target.resolved),
                }
            )
    return finding
