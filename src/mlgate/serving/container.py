"""Source `container`: an image given by name or built from a Dockerfile, run through the
docker SDK on the engine at DOCKER_HOST (`scripts/docker-engine.sh` starts one). The container
uses the host network, so its server listens on 127.0.0.1 at the port it is given (in the
environment as PORT, and for '{port}' in `command`). A thread polls the engine's stats for the
container's peak memory and CPU time; the container is always stopped and removed.

The docker SDK is imported only when a container is served: `pip install 'mlgate[container]'`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from mlgate import docker_sdk, process
from mlgate.serving.command import HOST, local_port
from mlgate.serving.interface import (
    Resources,
    Server,
    ServeSpec,
    ServingError,
    ServingSource,
    with_port,
)
from mlgate.serving.sampling import Sampler

# As for a local process (mlgate.process): SIGTERM, then this long before SIGKILL.
_GRACE_S = 5
# Bounds each engine call that should be quick, so a hung engine cannot hang a teardown.
_API_TIMEOUT_S = 30
_LINE_MAX_CHARS = 300
_LABEL = "org.mlgate.serve"


class ContainerSource(ServingSource):
    name = "container"
    extras = ("container",)

    def start(self, spec: ServeSpec, deadline: float) -> Server:
        docker = docker_sdk.imported(ServingError)
        where = docker_sdk.engine_location()
        try:
            client = docker.from_env(timeout=_API_TIMEOUT_S)
            client.ping()
        except docker.errors.DockerException as exc:
            raise ServingError(f"no Docker engine at {where}: {_short(exc)}") from None
        image = _image(client, docker, spec, deadline)
        port = local_port(spec.port)
        command = with_port(spec.argv(), port) if spec.command is not None else None
        started = time.monotonic()
        try:
            # create, then start: a container that cannot start still exists and is removed.
            container = client.containers.create(
                image.id,
                command,
                environment=spec.env | {"PORT": str(port)},
                network_mode="host",  # the engine has no bridge network
                labels={_LABEL: "1"},
            )
        except docker.errors.DockerException as exc:
            raise ServingError(f"cannot create a container of {image.id}: {_short(exc)}") from None
        server = ContainerServer(client, container, f"http://{HOST}:{port}", started, image.id)
        try:
            container.start()
        except BaseException as exc:
            server.stop()
            if isinstance(exc, docker.errors.DockerException):
                raise ServingError(f"container did not start: {_short(exc)}") from None
            raise
        return server


class ContainerServer(Server):
    """A container mlgate created; `stop` removes it."""

    def __init__(self, client: Any, container: Any, url: str, started_at: float, image: str):
        super().__init__(url, started_at)
        self.image_digest = image
        self.container_id: str = container.id
        self._client = client
        self._container = container
        self._lock = threading.Lock()
        self._peak_memory = 0
        self._cpu_ns: int | None = None
        self._removed = False
        # A one-shot stats call costs milliseconds: sampling as often as a process's is cheap.
        self._sampler = Sampler(self._sample, f"mlgate-container-{container.short_id}")

    def _sample(self) -> None:
        try:
            # one_shot: the current numbers at once, without the engine's one-second wait for
            # a second sample (the CPU time used here is cumulative anyway).
            stats = self._client.api.stats(self.container_id, stream=False, one_shot=True)
        except Exception:  # gone, or the engine busy: the next sample may work
            return
        memory = stats.get("memory_stats") or {}
        usage = memory.get("usage")
        cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        with self._lock:
            if usage:
                # As `docker stats` does: page cache that can be dropped is not the server's.
                details = memory.get("stats") or {}
                cache = details.get("total_inactive_file", details.get("inactive_file", 0))
                self._peak_memory = max(self._peak_memory, usage - cache)
            if cpu:
                self._cpu_ns = max(self._cpu_ns or 0, cpu)

    def failure(self) -> str | None:
        try:
            self._container.reload()
        except Exception as exc:  # removed behind mlgate's back, or the engine is gone
            return f"container {self._container.short_id} is gone: {_short(exc)}"
        state = self._container.attrs.get("State") or {}
        if state.get("Status") not in ("exited", "dead"):
            return None
        code = state.get("ExitCode")
        how = "was killed (out of memory)" if state.get("OOMKilled") else f"exited {code}"
        last = self._last_log_line()
        return f"container {how}" + (f": {last}" if last else " (nothing in its log)")

    def _last_log_line(self) -> str | None:
        try:
            tail: bytes = self._container.logs(stdout=True, stderr=True, tail=20)
        except Exception:  # the exit code alone still explains the failure
            return None
        lines = [line.strip() for line in tail.decode(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            return None
        last = lines[-1]
        return last if len(last) <= _LINE_MAX_CHARS else last[: _LINE_MAX_CHARS - 1] + "…"

    def stop(self) -> None:
        if self._sampler.stopped:
            return
        # A second Ctrl-C or SIGTERM during the teardown must not leave the container running.
        with process.uninterrupted():
            # Its last sample is taken before the container (and its stats) are gone.
            self._sampler.stop()
            # A failed graceful stop is no problem: remove(force=True) kills it anyway.
            with contextlib.suppress(Exception):
                self._container.stop(timeout=_GRACE_S)
            try:
                self._container.remove(force=True)
            except Exception as exc:  # any engine error: say which container is left
                if "No such container" not in str(exc):
                    raise ServingError(
                        f"could not remove container {self.container_id[:12]}: {_short(exc)}"
                    ) from None
            self._removed = True

    def resources(self) -> Resources | None:
        if not self._sampler.stopped:
            self._sample()
        with self._lock:
            if self._cpu_ns is None and not self._peak_memory:
                return None
            return Resources(
                peak_memory_bytes=self._peak_memory,
                cpu_seconds=(self._cpu_ns or 0) / 1e9,
                image_digest=self.image_digest,
            )


def _image(client: Any, docker: Any, spec: ServeSpec, deadline: float) -> Any:
    """The image of `spec`: built from its Dockerfile, or the named one (pulled if missing)."""
    if spec.build is not None:
        context = Path(spec.working_directory) / spec.build.context
        if not context.is_dir():
            raise ServingError(f"build context {context} is not a directory")
        if not (context / spec.build.dockerfile).is_file():
            raise ServingError(f"no Dockerfile {spec.build.dockerfile} in {context}")
        try:
            image, _ = client.images.build(
                path=str(context),
                dockerfile=spec.build.dockerfile,
                rm=True,
                forcerm=True,  # no intermediate containers left behind by a failed step
                # The build counts against the startup timeout.
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except docker.errors.BuildError as exc:
            last = next((s for s in reversed(_build_lines(exc.build_log)) if s), str(exc))
            raise ServingError(f"image build from {context} failed: {last}") from None
        except docker.errors.DockerException as exc:
            raise ServingError(f"image build from {context} failed: {_short(exc)}") from None
        return image
    try:
        return client.images.get(spec.image)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise ServingError(f"cannot look up image {spec.image}: {_short(exc)}") from None
    try:
        return client.images.pull(spec.image)
    except docker.errors.DockerException as exc:
        raise ServingError(
            f"image {spec.image} is not on the engine and cannot be pulled: {_short(exc)}"
        ) from None


def _build_lines(log: Any) -> list[str]:
    lines: list[str] = []
    for chunk in log or ():
        text = chunk.get("error") or chunk.get("stream") or "" if isinstance(chunk, dict) else ""
        lines.extend(line.strip() for line in str(text).splitlines())
    return lines


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _LINE_MAX_CHARS else text[: _LINE_MAX_CHARS - 1] + "…"
