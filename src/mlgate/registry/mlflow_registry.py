"""The MLflow model registry as mlgate uses it: versions, aliases (one per stage), tags, the
files of a version with their digests, run artifacts, and a promotion lock that holds against
a plain MLflow server.

mlflow is imported inside the methods: importing this module does not need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate import redact
from mlgate.errors import MlgateError
from mlgate.registry.mlflow_lock import PromotionLocks
from mlgate.registry.one_line import one_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Defaults for the HTTP client when the user set none: MLflow's own (7 retries, backoff factor
# 2, 120 s timeout) make an unreachable server hang for minutes before anything is reported.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_CHUNK = 1 << 20
# Written by MLflow's models:/ downloads beside MLmodel: {model_name, model_version}.
REGISTERED_MODEL_META = "registered_model_meta"


class RegistryError(MlgateError):
    """An unknown model or version, an unreachable registry, a tampered ledger, ...

    Its message never shows credentials: the registry URI (and MLflow's own messages, which
    repeat it) may carry a user and password or a token."""

    def __init__(self, message: str) -> None:
        super().__init__(redact.credentials(message))


class LockBusy(RegistryError):
    """Someone else holds the promotion lock."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str | None
    source: str
    status: str
    tags: dict[str, str]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class FileDigest:
    path: str  # relative, with "/" separators
    sha256: str  # hex
    size: int


def download_artifacts(uri: str, **where: str) -> str:
    """mlflow.artifacts.download_artifacts(**where) from the store at `uri` (tracking and
    registry alike), the same on every MLflow mlgate supports (constraints/lowest.txt).

    MLflow 3 takes the store as `tracking_uri` and `registry_uri` for any location. MLflow 2
    has no `registry_uri` keyword and resolves an `artifact_uri` with the process-wide tracking
    URI whatever `tracking_uri` says: there a runs:/ location is downloaded by run id (which
    honours it) and everything under `_artifact_store`."""
    import mlflow.artifacts

    function = mlflow.artifacts.download_artifacts
    if _takes_registry_uri():
        return str(function(tracking_uri=uri, registry_uri=uri, **where))
    location = where.get("artifact_uri", "")
    if location.startswith("runs:/"):
        run_id, _, path = location.removeprefix("runs:/").partition("/")
        where = {k: v for k, v in where.items() if k != "artifact_uri"}
        where |= {"run_id": run_id, "artifact_path": path}
    with _artifact_store(uri):
        return str(function(tracking_uri=uri, **where))


def _takes_registry_uri() -> bool:
    """Whether this MLflow passes a store's URIs down to its artifact repositories (3.x)."""
    import inspect

    import mlflow.artifacts

    return "registry_uri" in inspect.signature(mlflow.artifacts.download_artifacts).parameters


@contextlib.contextmanager
def _artifact_store(uri: str) -> Iterator[None]:
    """Within the block, artifact repositories find the store at `uri`: MLflow 2 resolves a
    server's proxied artifacts (mlflow-artifacts:/) with the process-wide tracking URI, even
    for a client made for another store; MLflow 3 needs nothing."""
    if _takes_registry_uri():
        yield
        return
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def files_digest(files: list[FileDigest]) -> str:
    """The digest of a set of files: "sha256:" + the SHA-256 of the JSON text of
    [[path, sha256], ...] sorted by path, without spaces (separators "," and ":"), ASCII.
    Sizes are not part of it (a hash already pins the content). MLflow's own note of the
    version's name and number (REGISTERED_MODEL_META) is not part of it either: MLflow writes
    it into a local store's version directory the first time the version is loaded or served
    by a models:/ URI, which must not change what the version is."""
    canonical = sorted([f.path, f.sha256] for f in files if f.path != REGISTERED_MODEL_META)
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


class Registry(PromotionLocks):
    """One MLflow tracking/registry URI (both the same) and the client for it."""

    _failure = RegistryError
    _busy = LockBusy

    def __init__(self, uri: str, client: MlflowClient) -> None:
        self.uri = uri
        self._client = client

    @classmethod
    def connect(
        cls, tracking_uri: str | None = None, default_dir: Path = Path(".mlgate")
    ) -> Registry:
        """tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite:///<default_dir>/mlflow.db."""
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
        if not uri:
            default_dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{default_dir.as_posix()}/mlflow.db"
        if uri.startswith(("http://", "https://")):
            # Read by MLflow at every request; a value the user set wins.
            for key, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        # Set before mlflow is first imported: MLflow 3 reports usage otherwise.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise RegistryError(
                "the MLflow registry needs mlflow, which is not installed: "
                "pip install 'mlgate[serve]'"
            ) from None
        try:
            # Registry URI = tracking URI: one store holds runs, models and the locks.
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            # A cheap call that needs the store: a server that is down fails here, not later.
            client.search_registered_models(max_results=1)
        except Exception as exc:  # whatever the store raises, it means "cannot use it"
            raise RegistryError(
                f"MLflow registry at {uri} is not reachable: {one_line(exc)}"
            ) from None
        return cls(uri, client)

    # -- versions, aliases, tags ------------------------------------------------------------

    def model_version(self, name: str, version: str) -> ModelVersion:
        mv = self._call(
            f"model {name} version {version}",
            self._client.get_model_version,
            name,
            version,
            name=name,
        )
        return ModelVersion(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id or None,
            source=mv.source or "",
            status=str(mv.status),
            tags=dict(mv.tags or {}),
            aliases=tuple(sorted(mv.aliases or ())),
        )

    def alias(self, name: str, alias: str) -> str | None:
        model = self._call(f"model {name}", self._client.get_registered_model, name, name=name)
        version = (model.aliases or {}).get(alias)
        return None if version is None else str(version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(
            f"model {name} version {version}",
            self._client.set_registered_model_alias,
            name,
            alias,
            version,
            name=name,
        )

    def delete_alias(self, name: str, alias: str) -> None:
        if self.alias(name, alias) is None:
            return  # already unset: deleting is idempotent here, unlike in MLflow's REST API
        self._call(
            f"alias {alias} of model {name}",
            self._client.delete_registered_model_alias,
            name,
            alias,
            name=name,
        )

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call(
            f"model {name} version {version}",
            self._client.set_model_version_tag,
            name,
            version,
            key,
            value,
            name=name,
        )

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call(
            f"tag {key} of model {name}",
            self._client.set_registered_model_tag,
            name,
            key,
            value,
            name=name,
        )

    def model_tags(self, name: str) -> dict[str, str]:
        model = self._call(f"model {name}", self._client.get_registered_model, name, name=name)
        return dict(model.tags or {})

    # -- files and artifacts ----------------------------------------------------------------

    def model_files(self, name: str, version: str) -> list[FileDigest]:
        """Every file of the version (what models:/name/version resolves to), hashed."""
        with tempfile.TemporaryDirectory(prefix="mlgate-model-") as tmp:
            return self.download_model(name, version, Path(tmp))

    def version_location(self, name: str, version: str) -> str:
        """Where the version's files are stored, resolved with this registry's client: MLflow's
        models:/ resolver reads the process-wide registry URI instead of ours."""
        return str(
            self._call(
                f"model {name} version {version}",
                self._client.get_model_version_download_uri,
                name,
                version,
                name=name,
            )
        )

    def download_version(self, name: str, version: str, destination: Path) -> Path:
        """Download every file of the version into `destination`; where they landed (a file
        or a directory)."""
        location = self.version_location(name, version)
        destination.mkdir(parents=True, exist_ok=True)
        local = self._call(
            f"files of model {name} version {version}",
            download_artifacts,
            self.uri,
            artifact_uri=location,
            dst_path=str(destination),
        )
        return Path(local)

    def download_model(self, name: str, version: str, destination: Path) -> list[FileDigest]:
        """Download every file of the version into `destination` (what the load and quality
        stages load), hashed; paths relative to `destination`."""
        root = self.download_version(name, version, destination)
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files = [_digest(p, p.name if p == root else p.relative_to(root).as_posix()) for p in paths]
        if not files:
            location = self.version_location(name, version)
            raise RegistryError(f"model {name} version {version} has no files (at {location})")
        return sorted(files, key=lambda f: f.path)

    def model_digest(self, name: str, version: str) -> str:
        return files_digest(self.model_files(name, version))

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        with _artifact_store(self.uri):
            self._call(
                f"artifacts {artifact_path} of run {run_id}",
                self._client.log_artifacts,
                run_id,
                str(local_dir),
                artifact_path,
            )

    def download_artifacts(self, run_id: str, artifact_path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        local = self._call(
            f"artifacts {artifact_path} of run {run_id}",
            download_artifacts,
            self.uri,
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(destination),
        )
        return Path(local)

    # -- errors -----------------------------------------------------------------------------

    def _call(
        self, what: str, function: Any, *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """function(*args, **kwargs), with MLflow's errors turned into one-line RegistryErrors."""
        from mlflow.exceptions import MlflowException

        try:
            return function(*args, **kwargs)
        except (MlflowException, OSError) as exc:
            raise self._error(what, exc, name) from None

    def _error(self, what: str, exc: Exception, name: str | None) -> RegistryError:
        from mlflow.exceptions import MlflowException, RestException

        code = exc.error_code if isinstance(exc, MlflowException) else ""
        if code == "RESOURCE_DOES_NOT_EXIST" and name is not None:
            if not self._model_exists(name):
                return RegistryError(f"registered model {name} does not exist in {self.uri}")
            return RegistryError(f"{what} does not exist in {self.uri}")
        text = one_line(exc)
        if not isinstance(exc, RestException) and "API request to" in text:
            return RegistryError(f"MLflow registry at {self.uri} is not reachable: {text}")
        return RegistryError(f"{what}: {text}")

    def _model_exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(name)
        except MlflowException:
            return False
        return True


def _digest(path: Path, relative: str) -> FileDigest:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return FileDigest(relative, sha.hexdigest(), path.stat().st_size)
