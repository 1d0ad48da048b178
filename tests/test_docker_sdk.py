"""The docker SDK import shared by the image scanner and the container source."""

from __future__ import annotations

import sys

import pytest

from mlgate import docker_sdk
from mlgate.serving import ServingError


def test_without_the_sdk_the_callers_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` raises ImportError
    with pytest.raises(ServingError, match=r"pip install 'mlgate\[container\]'$"):
        docker_sdk.imported(ServingError)


def test_the_engine_location_is_docker_host_or_the_default_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/x.sock")
    assert docker_sdk.engine_location() == "unix:///run/x.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert docker_sdk.engine_location() == "the default socket (DOCKER_HOST is not set)"
