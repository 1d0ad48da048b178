"""The docker SDK, imported only where an engine is used (image scans, container serving)."""

from __future__ import annotations

import os
from typing import Any

from mlgate.errors import MlgateError


def imported(error: type[MlgateError]) -> Any:
    """The docker module, or `error` saying how to install it."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        raise error(
            "the docker SDK is not installed in this Python environment: "
            "pip install 'mlgate[container]'"
        ) from None
    return docker


def engine_location() -> str:
    """Where the SDK looks for the engine, for the message when there is none."""
    return os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
