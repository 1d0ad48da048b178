"""The MLflow model registry as mlgate uses it: versions, aliases (one per stage), tags, the
files of a version with their digests, run artifacts, and a promotion lock that holds against
a plain MLflow server.

mlflow is imported inside the methods: importing this module does not need it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate import redact
from mlgate.errors import MlgateError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LOCK_PREFIX = "mlgate-lock--"
_LOCK_TAG = "mlgate.lock"
_HOLDER_TAG = "mlgate.lock.holder"
_SINCE_TAG = "mlgate.lock.acquired_at"
_NONCE_TAG = "mlgate.lock.nonce"
# MLflow's own rule for alias names; a lock name's alias part can therefore never contain a
# dot, which keeps mlgate's internal lock names (".ledger", ".broken.") apart from alias locks.
_ALIAS = re.compile(r"[\w-]+")
# Defaults for the HTTP client when the user set none: MLflow's own (7 retries, backoff factor
# 2, 120 s timeout) make an unreachable server hang for minutes before anything is reported.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_POLL_S = 0.25
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


@dataclass(frozen=True)
class _LockState:
    holder: str
    since: float  # epoch seconds, as written by the holder
    nonce: str


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


class Registry:
    """One MLflow tracking/registry URI (both the same) and the client for it."""

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
                f"MLflow registry at {uri} is not reachable: {_line(exc)}"
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

    def download_model(self, name: str, version: str, destination: Path) -> list[FileDigest]:
        """Download every file of the version into `destination` (what the load and quality
        stages load), hashed; paths relative to `destination`."""
        what = f"files of model {name} version {version}"
        # The version's storage location, resolved with this registry's client: MLflow's
        # models:/ resolver reads the process-wide registry URI instead of ours.
        location = self._call(
            f"model {name} version {version}",
            self._client.get_model_version_download_uri,
            name,
            version,
            name=name,
        )
        destination.mkdir(parents=True, exist_ok=True)
        local = self._call(
            what,
            download_artifacts,
            self.uri,
            artifact_uri=location,
            dst_path=str(destination),
        )
        root = Path(local)
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files = [_digest(p, p.name if p == root else p.relative_to(root).as_posix()) for p in paths]
        if not files:
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

    # -- the promotion lock -----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, name: str, alias: str, holder: str, *, ttl_s: float = 900, wait_s: float = 0
    ) -> Iterator[None]:
        """Hold the promotion lock of name@alias for the duration of the block.

        The lock is a registered model named mlgate-lock--<name>--<alias>: creating a
        registered model is an INSERT under a unique key in MLflow's database, so of any
        number of concurrent creators exactly one succeeds, through the sqlite store as
        through a server (both answer RESOURCE_ALREADY_EXISTS to the others). Its tags say
        who holds it and since when; releasing deletes it, if it is still ours.
        """
        if not _ALIAS.fullmatch(alias):
            raise RegistryError(f"invalid alias {alias!r} (letters, digits, _ and - only)")
        lock_name = f"{LOCK_PREFIX}{name}--{alias}"
        with self._lock(lock_name, f"promotion lock for {name}@{alias}", holder, ttl_s, wait_s):
            yield

    @contextlib.contextmanager
    def _lock(
        self, lock_name: str, what: str, holder: str, ttl_s: float, wait_s: float
    ) -> Iterator[None]:
        nonce = uuid.uuid4().hex  # this acquisition, not the holder: one holder may retry
        deadline = time.monotonic() + max(wait_s, 0.0)
        broken = False
        vanished = 0
        while True:
            state = self._try_create_lock(lock_name, what, holder, nonce)
            if state is None:
                break  # acquired
            if state is _FREE:
                # Released between our create and our read: free now, try again at once
                # (bounded, in case of endless churn).
                vanished += 1
                if vanished <= 10:
                    continue
                state = _LockState("(changing holders)", time.time(), "")
            if not broken and time.time() - state.since > ttl_s:
                broken = True  # once per call: a crashed holder's lock, not a queue of them
                self._break_lock(lock_name, state, holder)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                since = dt.datetime.fromtimestamp(state.since, dt.timezone.utc)
                raise LockBusy(
                    f"the {what} is held by {state.holder} since "
                    f"{since.isoformat(timespec='seconds')} "
                    f"({max(time.time() - state.since, 0):.0f} s ago)"
                    + (f"; waited {wait_s:g} s" if wait_s > 0 else "")
                )
            time.sleep(min(remaining, _POLL_S + random.uniform(0, _POLL_S)))  # noqa: S311
        try:
            yield
        except BaseException:
            try:
                self._release_lock(lock_name, what, nonce)
            except RegistryError as exc:
                # The block's own error matters more; an unreleased lock expires after ttl_s.
                log.warning("could not release the %s: %s", what, exc)
            raise
        self._release_lock(lock_name, what, nonce)

    def _try_create_lock(
        self, lock_name: str, what: str, holder: str, nonce: str
    ) -> _LockState | None:
        """None when we now hold the lock; otherwise who holds it (_FREE when nobody)."""
        from mlflow.exceptions import MlflowException

        tags = {
            _LOCK_TAG: what,
            _HOLDER_TAG: holder,
            _SINCE_TAG: dt.datetime.now(dt.timezone.utc).isoformat(),
            _NONCE_TAG: nonce,
        }
        try:
            # Tags are written in the same transaction (and the same request) as the model.
            self._client.create_registered_model(
                lock_name, tags=tags, description=f"mlgate {what}; deleted when released"
            )
        except MlflowException as exc:
            code = exc.error_code
            if code == "RESOURCE_ALREADY_EXISTS":
                state = self._lock_state(lock_name)
                # Ours when the HTTP client retried a create whose first attempt had committed.
                return None if state is not None and state.nonce == nonce else state or _FREE
            if code == "RESOURCE_DOES_NOT_EXIST":
                # The sqlite store re-reads the existing model after the failed INSERT; it
                # was deleted in between. Free now: try again.
                return _FREE
            # A store error (e.g. a 500 after the client's retries): the create may still have
            # committed, so ask before giving up.
            state = self._lock_state(lock_name)
            if state is not None and state.nonce == nonce:
                return None
            raise RegistryError(f"cannot take the {what}: {_line(exc)}") from None
        # Check that the lock really carries our nonce before trusting it.
        state = self._lock_state(lock_name)
        if state is None or state.nonce != nonce:
            raise RegistryError(f"the {what} was taken over as it was created")
        return None

    def _lock_state(self, lock_name: str) -> _LockState | None:
        """Who holds the lock, None when nobody does."""
        from mlflow.exceptions import MlflowException

        for attempt in range(4):
            try:
                model = self._client.get_registered_model(lock_name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return None
                raise RegistryError(f"cannot read the lock {lock_name}: {_line(exc)}") from None
            tags = dict(model.tags or {})
            if _NONCE_TAG in tags or attempt == 3:
                break
            # The store reads the model and its tags in two statements: a lock being deleted
            # (or created) meanwhile shows up without tags. Read again.
            time.sleep(0.05)
        try:
            since = dt.datetime.fromisoformat(tags[_SINCE_TAG]).timestamp()
        except (KeyError, ValueError):
            # Missing or edited tag: the store's creation time still dates the lock.
            since = (model.creation_timestamp or 0) / 1000
        return _LockState(tags.get(_HOLDER_TAG, "(unknown)"), since, tags.get(_NONCE_TAG, "?"))

    def _break_lock(self, lock_name: str, stale: _LockState, breaker: str) -> None:
        """Remove a lock older than its TTL (a crashed holder).

        Breakers race too (every waiter sees the lock expire at about the same time), and
        "delete if the nonce is still T" is not atomic in MLflow: a second breaker could
        delete the lock that the first breaker has just re-taken. So the stale lock is not
        deleted but renamed to a name made of its nonce: a rename is an UPDATE under the same
        unique key, so for one stale nonce only one rename can ever succeed (the tombstone
        stays, as a record of who broke which lock). Crash-safe: before the rename nothing
        changed, after it the lock name is free.

        Residual race: between reading the stale nonce and renaming, the stale holder (slow,
        not dead) may release and a new contender take the lock; the rename then moves the
        fresh lock. We detect that by the nonce the tombstone carries and rename it back; only
        if yet another contender took the free name in that instant do two holders remain, and
        that is reported as an error. Holding a lock longer than its TTL is what opens it.
        """
        from mlflow.exceptions import MlflowException

        tomb = f"{lock_name}--.broken.{stale.nonce}"
        try:
            self._client.rename_registered_model(lock_name, tomb)
        except MlflowException:
            return  # someone else broke (or the holder released) it: contend again
        moved = self._lock_state(tomb)
        if moved is None:
            return  # cannot happen short of someone deleting tombstones: contend again
        if moved.nonce == stale.nonce:
            log.warning("broke the expired promotion lock %s of %s", lock_name, stale.holder)
            with contextlib.suppress(MlflowException):
                self._client.set_registered_model_tag(tomb, "mlgate.lock.broken_by", breaker)
            return
        try:
            self._client.rename_registered_model(tomb, lock_name)
        except MlflowException as exc:
            raise RegistryError(
                f"breaking the expired lock {lock_name} raced with its release; "
                f"check {tomb}: {_line(exc)}"
            ) from None

    def _release_lock(self, lock_name: str, what: str, nonce: str) -> None:
        from mlflow.exceptions import MlflowException

        state = self._lock_state(lock_name)
        if state is None or state.nonce != nonce:
            # Broken while we held it (we overran the TTL): the lock is someone else's now.
            log.warning("the %s was broken while held", what)
            return
        # Residual race: if it is broken and re-taken between this read and the delete, we
        # delete the new holder's lock. Only a holder that overran its TTL can get here.
        try:
            self._client.delete_registered_model(lock_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"cannot release the lock {lock_name}: {_line(exc)}") from None

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
        text = _line(exc)
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


_FREE = _LockState("", 0.0, "")


def _digest(path: Path, relative: str) -> FileDigest:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return FileDigest(relative, sha.hexdigest(), path.stat().st_size)


def _line(exc: BaseException, limit: int = 300) -> str:
    """The exception's message on one line, shortened."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
