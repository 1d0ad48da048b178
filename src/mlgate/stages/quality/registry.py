"""Why a registered model the quality stage needs is not in the registry it reached: no
registry was configured (mlgate fell back to its local default), or the registry is empty - a
CI job pointed at the wrong or no registry. Said in the stage's error, so such a job fails with
the reason instead of judging nothing."""

from __future__ import annotations

import os

from mlgate.registry.mlflow_registry import Registry


def configured(tracking_uri: str | None) -> bool:
    """Whether the config or the environment named a registry (an empty value names none: a
    GitHub variable or secret that is not set expands to nothing)."""
    return bool(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))


def why_missing(registry: Registry, tracking_uri: str | None) -> str:
    """A hint to append to "model ... does not exist": empty when there is nothing to add."""
    hints = []
    if not configured(tracking_uri):
        hints.append(
            "no registry is configured (quality.tracking_uri or MLFLOW_TRACKING_URI), so mlgate "
            "looked in its local default"
        )
    if _is_empty(registry):
        hints.append("that registry holds no registered models at all")
    return f" ({'; '.join(hints)})" if hints else ""


def _is_empty(registry: Registry) -> bool:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    try:
        return not client.search_registered_models(max_results=1)
    except Exception:  # the registry answered the lookup before: say nothing more
        return False
