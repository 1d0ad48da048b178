"""The MLflow model registry: one alias per stage, a promotion lock, a hash-chained ledger.

One alias per stage, a promotion lock that holds against a plain MLflow server, and an
append-only ledger per registered model.

    from mlgate.registry import Ledger, Registry

    registry = Registry.connect()  # MLFLOW_TRACKING_URI, else sqlite:///.mlgate/mlflow.db
    with registry.lock("iris", "production", holder="ci run 42"):
        registry.set_alias("iris", "production", "7")
        Ledger(registry, "iris").append({"action": "promote", "version": "7"})

Importing this package does not import mlflow (the `serve` extra); using a Registry does.
"""

from __future__ import annotations

from mlgate.registry.ledger import Ledger
from mlgate.registry.mlflow_registry import (
    FileDigest,
    LockBusy,
    ModelVersion,
    Registry,
    RegistryError,
    files_digest,
)

__all__ = [
    "FileDigest",
    "Ledger",
    "LockBusy",
    "ModelVersion",
    "Registry",
    "RegistryError",
    "files_digest",
]
