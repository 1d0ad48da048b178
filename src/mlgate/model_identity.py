"""Which registered model version a piece of evidence is about, and the digest of its files.

Stages that load or scan a registered model record it as an identity, a dict of this shape:

    {"uri": "models:/iris@candidate",      # as configured
     "resolved": "models:/iris/2",         # the version the URI pointed at when it was used
     "registered_model": "iris", "version": "2",
     "digest": "sha256:..."}               # files_digest of the version's files

The quality stage's `data["candidate"]` has this shape (with more keys); the load stage writes
`data["candidate_model"]`, the scan stage `data["model_targets"]` (a list). A bundle and a
promotion compare them with the bundled version (see bundle_subject); `read` is the one reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.registry.mlflow_registry import Registry
    from mlgate.serving import ServeSpec

# models:/NAME@ALIAS or models:/NAME/VERSION (other models:/ forms are not registry versions).
REGISTERED_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")


@dataclass(frozen=True)
class ModelIdentity:
    uri: str
    resolved: str
    registered_model: str | None
    version: str | None
    digest: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "uri": self.uri,
            "resolved": self.resolved,
            "registered_model": self.registered_model,
            "version": self.version,
            "digest": self.digest,
        }

    def is_version(self, name: str, version: str, digest: str) -> bool:
        """The same registered model, version and files as `name`/`version` with `digest`."""
        return (self.registered_model, self.version, self.digest) == (name, version, digest)

    @property
    def shown(self) -> str:
        return f"{self.resolved} ({self.digest})"


def registered(uri: str) -> tuple[str, str | None, str | None] | None:
    """(name, alias, version) of a registry URI; None for any other URI or path."""
    match = REGISTERED_URI.fullmatch(uri)
    if match is None:
        return None
    name, alias, version = match.group("name", "alias", "version")
    return name, alias, version


def identify(registry: Registry, uri: str) -> ModelIdentity | None:
    """The version a registry URI points at now, with the digest of its files; None when `uri`
    is not a registry URI. Registry errors (unknown model, alias not set) are RegistryErrors."""
    from mlgate.registry.mlflow_registry import RegistryError, files_digest

    parts = registered(uri)
    if parts is None:
        return None
    name, alias, version = parts
    if alias is not None:
        version = registry.alias(name, alias)
        if version is None:
            raise RegistryError(f"alias {alias} of model {name} is not set ({uri})")
    assert version is not None
    number = registry.model_version(name, version).version
    digest = files_digest(registry.model_files(name, number))
    return ModelIdentity(uri, f"models:/{name}/{number}", name, number, digest)


def pin_served(spec: ServeSpec | None) -> tuple[ServeSpec | None, ModelIdentity | None]:
    """A served registry model pinned to the version its URI points at now, and that version's
    identity: what is served is what the evidence records, even if the alias moves meanwhile.
    Anything else is returned as it is, without an identity."""
    if spec is None or spec.source != "mlflow" or registered(spec.model_uri or "") is None:
        return spec, None
    from mlgate.registry.mlflow_registry import Registry

    registry = Registry.connect(spec.env.get("MLFLOW_TRACKING_URI"))
    identity = identify(registry, spec.model_uri or "")
    assert identity is not None
    return spec.model_copy(update={"model_uri": identity.resolved}), identity


def read(value: object) -> ModelIdentity | None:
    """An identity recorded in evidence, or None when `value` is not one (evidence is input:
    odd types are no identity, never a crash)."""
    if not isinstance(value, dict):
        return None
    fields: dict[str, Any] = {
        key: value.get(key) for key in ("uri", "resolved", "registered_model", "version", "digest")
    }
    if not all(isinstance(fields[key], str) and fields[key] for key in ("digest", "resolved")):
        return None
    for key in ("registered_model", "version"):
        if fields[key] is not None and not isinstance(fields[key], str):
            return None
    if not isinstance(fields["uri"], str):
        fields["uri"] = fields["resolved"]
    return ModelIdentity(**fields)


def read_all(value: object) -> list[ModelIdentity]:
    """The identities of a recorded list (scan's model_targets); entries that are none, left out."""
    if not isinstance(value, list):
        return []
    return [identity for identity in map(read, value) if identity is not None]
