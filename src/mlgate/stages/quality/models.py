"""The two models the quality stage compares: URIs resolved (registry, artifact store, local
directory), files fetched, digested, scanned and loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mlgate import evidence as ev
from mlgate.errors import one_line
from mlgate.stages import model_guard
from mlgate.stages.interface import RunContext
from mlgate.stages.quality.config import NAME, QualityConfig
from mlgate.stages.quality.errors import Invalid

if TYPE_CHECKING:
    from mlgate.registry.mlflow_registry import Registry

_REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")
# A scheme of two letters or more: "C:\models" is a path.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


@dataclass(frozen=True)
class Reference:
    """Where one model is, once its URI is resolved."""

    role: str
    uri: str  # as configured
    shown: str  # models:/NAME/VERSION for a registered model, else the URI or path
    registered: tuple[str, str] | None = None  # name, version
    local: Path | None = None
    remote: str | None = None  # an artifact URI to download


@dataclass(frozen=True)
class Model:
    reference: Reference
    digest: str
    files: int
    flavors: list[str]
    pyfunc: Any
    estimator: Any  # the scikit-learn model of an sklearn flavor, else None

    def describe(self) -> dict[str, object]:
        name, number = self.reference.registered or (None, None)
        return {
            "uri": self.reference.uri,
            "resolved": self.reference.shown,
            "registered_model": name,
            "version": number,
            "digest": self.digest,
            "files": self.files,
            "flavors": self.flavors,
        }


class Models:
    """Resolves, fetches and loads the two models; connects to the registry only when a URI
    needs it."""

    def __init__(
        self, config: QualityConfig, workdir: Path, scratch: Path, context: RunContext
    ) -> None:
        self._config = config
        self._context = context
        self._workdir = workdir
        self._scratch = scratch
        self._registry: Registry | None = None

    def registry(self) -> Registry:
        if self._registry is None:
            from mlgate.registry.mlflow_registry import Registry, RegistryError

            try:
                self._registry = Registry.connect(self._config.tracking_uri)
            except RegistryError as exc:
                raise Invalid(str(exc)) from None
        return self._registry

    def reference(self, role: str, uri: str) -> Reference:
        from mlgate.registry.mlflow_registry import RegistryError

        match = _REGISTERED.fullmatch(uri)
        if match is not None:
            name, alias, number = match.group("name", "alias", "version")
            try:
                if alias is not None:
                    aliased = self.registry().alias(name, alias)
                    if aliased is None:
                        raise Invalid(f"{role}: alias {alias} of model {name} is not set ({uri})")
                    number = aliased
                else:
                    self.registry().model_version(name, number)
            except RegistryError as exc:
                raise Invalid(f"{role}: {exc}{self._why_missing()}") from None
            return Reference(role, uri, f"models:/{name}/{number}", registered=(name, number))
        if _SCHEME.match(uri) and not uri.startswith("file:"):
            return Reference(role, uri, uri, remote=uri)
        path = Path(unquote(urlsplit(uri).path)) if uri.startswith("file:") else Path(uri)
        return Reference(role, uri, uri, local=self._workdir / path)

    def _why_missing(self) -> str:
        from mlgate.stages.quality.registry import why_missing

        return why_missing(self.registry(), self._config.tracking_uri)

    def champion(self, candidate: Reference) -> tuple[Reference | None, str | None]:
        """The champion, or None and why there is none (a note for the evidence)."""
        from mlgate.registry.mlflow_registry import RegistryError

        config = self._config
        if config.champion is not None:
            return self.reference("champion", config.champion), None
        if candidate.registered is None or config.champion_alias is None:
            return None, "no champion configured"
        name, _ = candidate.registered
        try:
            number = self.registry().alias(name, config.champion_alias)
        except RegistryError as exc:
            raise Invalid(f"champion: {exc}") from None
        if number is None:
            return None, f"models:/{name}@{config.champion_alias} is not set"
        return Reference(
            "champion",
            f"models:/{name}@{config.champion_alias}",
            f"models:/{name}/{number}",
            registered=(name, number),
        ), None

    def load(self, reference: Reference) -> Model:
        role = reference.role
        directory = self._directory(reference)
        if not (directory / "MLmodel").is_file():
            raise Invalid(f"{role}: {reference.shown} is not an MLflow model (no MLmodel file)")
        digest, files = _files_digest(directory)
        if refused := model_guard.refusal(self._context, NAME, directory):
            raise Invalid(f"{role}: {refused}")
        try:
            import mlflow.pyfunc
        except ImportError:
            raise Invalid("the quality stage needs mlflow: pip install 'mlgate[quality]'") from None
        try:
            model = mlflow.pyfunc.load_model(str(directory))
            flavors = sorted(model.metadata.flavors)
            estimator = None
            if "sklearn" in flavors:
                import mlflow.sklearn

                estimator = mlflow.sklearn.load_model(str(directory))
        except Exception as exc:  # unpickling can raise anything: all mean "cannot load"
            raise Invalid(
                f"{role}: cannot load the model {reference.shown}: {one_line(exc)}"
            ) from None
        return Model(reference, digest, files, flavors, model, estimator)

    def _directory(self, reference: Reference) -> Path:
        if reference.local is not None:
            if not reference.local.is_dir():
                what = "is not a directory" if reference.local.exists() else "does not exist"
                raise Invalid(f"{reference.role}: model directory {reference.shown} {what}")
            return reference.local
        from mlgate.registry.mlflow_registry import download_artifacts

        registry = self.registry()
        destination = self._scratch / reference.role
        try:
            if reference.registered is not None:
                local = str(registry.download_version(*reference.registered, destination))
            else:
                local = download_artifacts(
                    registry.uri, artifact_uri=str(reference.remote), dst_path=str(destination)
                )
        except Exception as exc:  # store and transport errors alike: the model is not there
            raise Invalid(
                f"{reference.role}: cannot download {reference.shown}: {one_line(exc)}"
            ) from None
        return Path(local)


def _files_digest(directory: Path) -> tuple[str, int]:
    """The digest of a model's files, as the registry computes it (files_digest), so a model
    can be recognised in promotion bundles."""
    from mlgate.registry.mlflow_registry import FileDigest, files_digest

    files = [
        FileDigest(p.relative_to(directory).as_posix(), ev.sha256_file(p), p.stat().st_size)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    ]
    return files_digest(files), len(files)
