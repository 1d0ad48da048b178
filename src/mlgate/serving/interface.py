"""What a serving source is: how a model server is described, started, measured and stopped.

A new source (e.g. a container) is one module implementing `ServingSource`, one line in
`mlgate.serving.SOURCES` and its name in `ServeSpec.source` (with the keys it needs).
`mlgate.serving.serve` does the rest: the health check, the cold start, the teardown.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlgate.errors import MlgateError
from mlgate.fields import HttpUrl, Port, Seconds, UrlPath

# What a source needs besides the common keys (exactly one of the alternatives); named here so
# one error lists all of them.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "url": ("url",),
    "command": ("command",),
    "mlflow": ("model_uri",),
    "container": ("image", "build"),
}
# Source keys a source may take besides what it needs: a container's command overrides the
# image's CMD.
_OPTIONAL: dict[str, tuple[str, ...]] = {"container": ("command",)}
_PORT_PLACEHOLDER = "{port}"


class ServingError(MlgateError):
    """The server could not be started or never became healthy; the message says why."""


class ImageBuild(BaseModel):
    """An image built from a Dockerfile, for source container."""

    model_config = ConfigDict(extra="forbid")

    context: str = Field(description="The build context directory (relative to working_directory).")
    dockerfile: str = Field(
        default="Dockerfile", description="The Dockerfile, relative to the context."
    )


class ServeSpec(BaseModel):
    """How to get a model server: a running URL, a command that starts one, an MLflow model or
    a container."""

    # protected_namespaces: model_uri is no pydantic API (pydantic before 2.10 warns about it).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    source: Literal["url", "command", "mlflow", "container"] = Field(
        description="url: a server already running; command: a command that starts one; "
        "mlflow: `mlflow models serve` of model_uri; container: image or build run on a Docker "
        "engine (DOCKER_HOST) on the host network."
    )
    url: HttpUrl | None = Field(
        default=None, description="source url: base URL, e.g. http://127.0.0.1:8080."
    )
    command: str | list[str] | None = Field(
        default=None,
        description="source command: the server's command, split like a shell would (no shell "
        "is used) unless a list; '{port}' in an argument becomes the port, e.g. "
        "'python serve.py --port {port}'. Source container: optional, replaces the image's "
        "CMD (the port is also in the environment as PORT).",
    )
    model_uri: str | None = Field(
        default=None,
        description="source mlflow: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/PATH or "
        "a local model directory (relative to working_directory).",
    )
    image: str | None = Field(
        default=None,
        description="source container: an image on the engine, by name or id, e.g. "
        "'iris-server:1'.",
    )
    build: ImageBuild | None = Field(
        default=None,
        description="source container: build the image from a Dockerfile, "
        "{context: DIR, dockerfile: FILE}.",
    )
    port: Port | None = Field(
        default=None,
        description="Port the server listens on at 127.0.0.1 (default: a free one); it must be "
        "free, or another server would answer the health check.",
    )
    health_path: UrlPath = Field(
        default="/ping", description="Polled until it answers 200 (MLflow's is /ping)."
    )
    startup_timeout: Seconds = Field(
        default=120, description="Seconds the server has to start and become healthy."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables of the server process, e.g. MLFLOW_TRACKING_URI.",
    )
    working_directory: str = Field(
        default=".",
        description="Where the server command runs; a container build context is relative to it.",
    )

    @model_validator(mode="after")
    def _keys_of_the_source(self) -> ServeSpec:
        needed = _REQUIRED[self.source]
        given = [key for key in needed if getattr(self, key) not in (None, "", [])]
        if not given:
            raise ValueError(f"source {self.source} needs {' or '.join(needed)}")
        if len(given) > 1:
            raise ValueError(f"source {self.source} takes {' or '.join(needed)}, not both")
        others = {key for keys in _REQUIRED.values() for key in keys}
        others -= set(needed) | set(_OPTIONAL.get(self.source, ()))
        unused = [key for key in others if getattr(self, key)]
        if unused:
            raise ValueError(f"source {self.source} does not use {', '.join(sorted(unused))}")
        if self.source == "url" and self.port is not None:
            raise ValueError("source url takes its port from the url, not from port")
        if self.source in ("command", "container") and self.command is not None:
            self.argv()  # a command that cannot be split fails here, not at start
        if self.source == "command":
            arguments = self.argv()
            if self.port is None and not any(_PORT_PLACEHOLDER in a for a in arguments):
                raise ValueError(
                    "the command must pass the port on, with '{port}' in an argument, "
                    "or port must say where the server listens"
                )
        return self

    def argv(self) -> list[str]:
        """The command as arguments, `{port}` not yet substituted."""
        if isinstance(self.command, list):
            return list(self.command)
        try:
            return shlex.split(self.command or "")
        except ValueError as exc:  # an unclosed quote
            raise ValueError(f"command cannot be split like a shell would: {exc}") from None


def with_port(arguments: list[str], port: int) -> list[str]:
    """`arguments` with every `{port}` replaced; only that placeholder (no str.format), so
    other braces in the command, such as JSON, stay as they are."""
    return [a.replace(_PORT_PLACEHOLDER, str(port)) for a in arguments]


@dataclass(frozen=True)
class Resources:
    """What the server's processes used, as far as it was measured."""

    peak_memory_bytes: int  # highest sampled sum of resident memory over its processes
    cpu_seconds: float  # user + system time of its processes
    # The image a container ran (`sha256:...`), so evidence says exactly what was measured.
    image_digest: str | None = None


class Server:
    """A server mlgate talks to at `url`. This base is a server mlgate did not start: nothing
    to stop, nothing measured; sources that start processes override the hooks."""

    def __init__(self, url: str, started_at: float | None = None) -> None:
        self.url = url
        # time.monotonic() when its process was started; None when mlgate did not start it.
        self.started_at = started_at
        # From start to the first healthy answer, in seconds; `serve` sets it.
        self.cold_start_s: float | None = None

    def failure(self) -> str | None:
        """Why the server can no longer become healthy (its process exited), else None."""
        return None

    def output_tail(self) -> str | None:
        """The last lines the server printed, as one line (see `output.ServerOutput.tail`);
        None when there is nothing, or mlgate did not start it."""
        return None

    def output(self) -> bytes | None:
        """Everything the server printed (capped, credentials redacted; still there after
        `stop`), None when mlgate did not start it."""
        return None

    def stop(self) -> None:
        """Stop everything the source started; idempotent."""

    def resources(self) -> Resources | None:
        """Peak memory and CPU time of the server's processes, None when not measurable. Still
        answers after `stop` (with what was measured until then)."""
        return None


class ServingSource(ABC):
    name: ClassVar[str]
    # Package extras (pyproject) mlgate needs to start servers of this source.
    extras: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def start(self, spec: ServeSpec, deadline: float) -> Server:
        """Start the server of `spec` (not waiting until it is healthy: `serve` does that) and
        return it; raise `ServingError` when it cannot start, leaving nothing running.
        `deadline` is the time.monotonic() by which it must be healthy, for sources whose
        start itself takes time (building an image)."""
