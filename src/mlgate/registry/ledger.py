"""The append-only ledger of a registered model: what mlgate did to it, one record per step.

Source of truth: registered-model tags mlgate.ledger.000001, mlgate.ledger.000002, ... (one
JSON record each). Copies for people and audits: the version tag mlgate.ledger.last on the
version a record is about ("version", else "to_version", else "from_version"; the tag's value
is {"seq": n, "record": ...}), and the whole ledger as JSON lines logged to a run of the
experiment mlgate-ledger (one run per model, tagged mlgate.ledger.model) as
ledger/<name>.jsonl after each append.

The records form a hash chain (see ledger_chain): each carries the digest of the record
before it, and the model tag mlgate.ledger_head names the last record's digest, so an edited,
replaced or removed record is reported, not only a gap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

from mlgate.registry.ledger_chain import (
    HEAD_TAG,
    ChainReport,
    LedgerBroken,
    head_value,
    link,
    verify,
)
from mlgate.registry.mlflow_registry import Registry, RegistryError
from mlgate.registry.one_line import one_line

PREFIX = "mlgate.ledger."
LAST_TAG = "mlgate.ledger.last"
EXPERIMENT = "mlgate-ledger"
_RUN_KEY_TAG = "mlgate.ledger.model_key"
_RUN_MODEL_TAG = "mlgate.ledger.model"
_SEQ = re.compile(r"[0-9]{6,}")
# A registered-model tag value is VARCHAR(5000) in MLflow's SQL schema; the client checks
# only its own 100,000 limit, and sqlite would store more, but MySQL/PostgreSQL would not.
MAX_RECORD_CHARS = 5000


class Ledger:
    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self.name = name
        self._run: str | None = None  # the ledger run's id, once found

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order; a gap, an unreadable record or a broken chain (an edited,
        replaced or removed record) is reported as tampering (LedgerBroken for the chain)."""
        report = self.read()
        if report.breaks:
            raise LedgerBroken(self.name, report)
        return report.records

    def read(self) -> ChainReport:
        """Every record with the chain's verdict on it, breaks included (for `history`); a
        gap or an unreadable record still raises: there is no record to show there."""
        tags = self._registry.model_tags(self.name)
        return verify(_parse(self.name, tags), tags.get(HEAD_TAG))

    def append(self, record: dict[str, Any]) -> int:
        """Add a record; returns its sequence number (1, 2, ...). Callers hold the promotion
        lock; the ledger takes its own lock too, as promotions to different aliases of one
        model hold different locks but share this ledger."""
        _encode(self.name, record)  # bad input fails before the lock is taken
        version = _subject(record)
        if version is not None:
            self._registry.model_version(self.name, str(version))  # fail before writing
        registry = self._registry
        writer = f"ledger writer {socket.gethostname()}:{os.getpid()}"
        with registry.ledger_lock(self.name, writer):
            chain = self.read()
            if chain.breaks:
                raise LedgerBroken(self.name, chain)
            text = _encode(self.name, link(record, chain))
            seq = len(chain.records) + 1
            key = _key(seq)
            # Never overwrite: the key must still be free just before writing it.
            if key in registry.model_tags(self.name):
                raise RegistryError(
                    f"ledger record {seq} of {self.name} already exists; refusing to overwrite it"
                )
            registry.set_model_tag(self.name, key, text)
            written = registry.model_tags(self.name)
            if written.get(key) != text:
                raise RegistryError(f"ledger record {seq} of {self.name} was written concurrently")
            try:
                registry.set_model_tag(self.name, HEAD_TAG, head_value(seq, text))
                if version is not None:
                    last = json.dumps({"seq": seq, "record": json.loads(text)}, ensure_ascii=True)
                    registry.set_version_tag(self.name, str(version), LAST_TAG, last)
                self._log_artifact([r for _, r in _parse(self.name, written)])
            except RegistryError as exc:
                # The record is in the ledger; say so, or a retry would append it twice.
                raise RegistryError(
                    f"ledger record {seq} of {self.name} was written, but not its copies: {exc}"
                ) from None
        return seq

    def _log_artifact(self, records: list[dict[str, Any]]) -> None:
        lines = [json.dumps(r, sort_keys=True, ensure_ascii=True) for r in records]
        run_id = self._run_id()
        with tempfile.TemporaryDirectory(prefix="mlgate-ledger-") as tmp:
            (Path(tmp) / f"{self.name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            self._registry.log_artifacts(run_id, Path(tmp), "ledger")

    def _run_id(self) -> str:
        if self._run is None:
            self._run = self._find_or_create_run()
        return self._run

    def _find_or_create_run(self) -> str:
        """The ledger run of this model, created on first use (under the ledger lock)."""
        from mlflow.exceptions import MlflowException

        client = self._registry._client
        # The model name hashed: a filter string cannot quote every name MLflow allows.
        key = hashlib.sha256(self.name.encode()).hexdigest()
        try:
            experiment_id = self._experiment_id()
            runs = client.search_runs(
                [experiment_id], filter_string=f"tags.`{_RUN_KEY_TAG}` = '{key}'", max_results=1
            )
            if runs:
                return str(runs[0].info.run_id)
            run = client.create_run(
                experiment_id,
                tags={_RUN_KEY_TAG: key, _RUN_MODEL_TAG: self.name},
                run_name=f"ledger {self.name}",
            )
            client.set_terminated(run.info.run_id)  # a record holder, not something running
            return str(run.info.run_id)
        except MlflowException as exc:
            raise RegistryError(f"the ledger run of {self.name}: {one_line(exc)}") from None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self._registry._client
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            try:
                return str(
                    client.create_experiment(EXPERIMENT, _artifact_location(self._registry.uri))
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another model's ledger won
                    raise
                experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None or experiment.lifecycle_stage != "active":
            raise RegistryError(
                f"the MLflow experiment {EXPERIMENT} is deleted; restore it "
                f"(mlflow experiments restore) to keep ledger copies"
            )
        return str(experiment.experiment_id)


def _subject(record: dict[str, Any]) -> Any:
    """The version a record is about: its "version", else where an alias moved to
    ("to_version"), else where it moved from (an alias removed); None for none."""
    for field in ("version", "to_version", "from_version"):
        if record.get(field) is not None:
            return record[field]
    return None


def _key(seq: int) -> str:
    return f"{PREFIX}{seq:06d}"


def _encode(name: str, record: dict[str, Any]) -> str:
    if not isinstance(record, dict):
        raise RegistryError(f"a ledger record of {name} must be a JSON object")
    try:
        text = json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"a ledger record of {name} is not plain JSON: {exc}") from None
    if len(text) > MAX_RECORD_CHARS:
        raise RegistryError(
            f"a ledger record of {name} is {len(text)} characters as JSON; MLflow stores at most "
            f"{MAX_RECORD_CHARS} in a registered-model tag"
        )
    return text


def _parse(name: str, tags: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every record as stored (the text the chain digests) and parsed, in order."""
    entries: dict[int, str] = {}
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        suffix = key[len(PREFIX) :]
        if not _SEQ.fullmatch(suffix) or _key(int(suffix)) != key:
            raise RegistryError(f"the ledger of {name} has a foreign tag {key}: tampered with?")
        entries[int(suffix)] = value
    records = []
    for seq in range(1, len(entries) + 1):
        if seq not in entries:
            raise RegistryError(
                f"the ledger of {name} has a gap: record {seq} is missing "
                f"(records up to {max(entries)} exist): tampered with?"
            )
        try:
            record = json.loads(entries[seq])
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise RegistryError(
                f"ledger record {seq} of {name} is not a JSON object: tampered with?"
            )
        records.append((entries[seq], record))
    return records


def _artifact_location(uri: str) -> str | None:
    """For a sqlite store, the ledger's artifacts go next to the database; MLflow's default
    would be ./mlruns under whatever the current directory is. A server picks its own."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :])
    return (database.resolve().parent / "mlartifacts").as_uri()
