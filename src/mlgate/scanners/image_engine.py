"""Getting the image to scan from the Docker engine: looked up by name or built, then saved to
a docker-archive tarball. The docker SDK is imported only here: `pip install 'mlgate[container]'`.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate import docker_sdk
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import (
    ScanTargets,
)
from mlgate.scanners.tool_output import (
    clip,
    short,
    shown,
)

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SAVE_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class SavedImage:
    id: str
    repo_digests: list[str]
    engine_version: str


def save_image(targets: ScanTargets, dockerfile: Path | None, archive: Path) -> SavedImage:
    docker = docker_sdk.imported(ScanError)
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        client = docker.from_env(timeout=max(60, int(targets.timeout)))
        engine_version = str(client.version().get("Version", ""))
    except docker.errors.DockerException as exc:
        raise ScanError(f"no Docker engine at {where}: {short(exc)}") from None
    with contextlib.closing(client):
        if targets.image is not None:
            image = _named_image(client, docker, targets.image)
        else:
            assert dockerfile is not None
            image = _built_image(client, docker, dockerfile, targets.workdir)
        try:
            with archive.open("wb") as handle:
                for chunk in image.save(chunk_size=_SAVE_CHUNK_BYTES):
                    handle.write(chunk)
        except docker.errors.DockerException as exc:
            raise ScanError(f"cannot save image {image.id}: {_engine_problem(exc)}") from None
        return SavedImage(
            id=str(image.id),
            repo_digests=[str(d) for d in image.attrs.get("RepoDigests") or []],
            engine_version=engine_version,
        )


def _named_image(client: Any, docker: Any, name: str) -> Any:
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        # Never pulled: the gate scans the image the pipeline built, not a registry's copy.
        raise ScanError(f"image {name} is not on the engine") from None
    except docker.errors.DockerException as exc:
        raise ScanError(f"cannot look up image {name}: {_engine_problem(exc)}") from None


def _built_image(client: Any, docker: Any, dockerfile: Path, workdir: Path) -> Any:
    named = shown(dockerfile, workdir)
    try:
        image, _ = client.images.build(
            path=str(dockerfile.parent),
            dockerfile=dockerfile.name,
            rm=True,
            forcerm=True,  # no intermediate containers left behind by a failed step
        )
    except docker.errors.BuildError as exc:
        raise ScanError(f"image build from {named} failed{_failed_step(exc)}") from None
    except docker.errors.DockerException as exc:
        raise ScanError(f"image build from {named} failed: {_engine_problem(exc)}") from None
    return image


def _failed_step(exc: Any) -> str:
    """' at step 2/3 (RUN ...): <the step's last output line> (<the engine's error>)'."""
    # Chunks are not whole lines, and a step's stderr comes in colour.
    streamed = "".join(
        str(chunk.get("stream") or "") for chunk in exc.build_log or () if isinstance(chunk, dict)
    )
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", streamed).splitlines() if line.strip()]
    steps = [i for i, line in enumerate(lines) if line.startswith("Step ")]
    error = " ".join(str(exc.msg).split())
    if not steps:
        return f": {clip(error)}"
    number, _, instruction = lines[steps[-1]].removeprefix("Step ").partition(" : ")
    output = [
        line
        for line in lines[steps[-1] + 1 :]
        if not line.startswith(("--->", "Removing intermediate container"))
    ]
    said = f"{output[-1]} ({error})" if output and output[-1] not in error else error
    return f" at step {number} ({clip(instruction, 80)}): {clip(said)}"


def _engine_problem(exc: BaseException) -> str:
    """The engine's own words (an APIError's explanation), not the request URL around them."""
    return clip(str(getattr(exc, "explanation", None) or exc))
