"""Source `mlflow`: `mlflow models serve` of a registered model, a run's model or a local model
directory, in the current Python environment (`--env-manager local`). MLflow itself runs only
in that child process: importing this module does not import mlflow."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from mlgate.serving.command import HOST, local_port, start_process
from mlgate.serving.interface import Server, ServeSpec, ServingError, ServingSource

# A URI scheme (models:, runs:, file:, s3:...); two letters at least, so C:\ stays a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# MLflow 3 reports usage to a remote service unless told not to; nothing leaves this machine.
_NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class MlflowSource(ServingSource):
    name = "mlflow"
    extras = ("serve",)

    def start(self, spec: ServeSpec, deadline: float) -> Server:
        # The scripts of this environment, not whatever `mlflow` comes first on PATH: the
        # model is loaded with this environment's packages.
        scripts = Path(sys.executable).parent
        mlflow = scripts / "mlflow"
        if not os.access(mlflow, os.X_OK):
            raise ServingError(
                f"mlflow is not installed in this Python environment (no {mlflow}): "
                "pip install 'mlgate[serve]'"
            )
        model = _model_argument(spec.model_uri or "", Path(spec.working_directory))
        port = local_port(spec.port)
        env = os.environ | spec.env | _NO_TELEMETRY
        # `mlflow models serve` execs `uvicorn` found on PATH.
        env["PATH"] = os.pathsep.join(filter(None, (str(scripts), env.get("PATH"))))
        argv = [str(mlflow), "models", "serve", "-m", model, "--env-manager", "local"]
        argv += ["--host", HOST, "--port", str(port)]
        return start_process(argv, port, Path(spec.working_directory), env)


def _model_argument(uri: str, workdir: Path) -> str:
    """The model URI as given, or a local model directory as an absolute path; a directory
    that is no MLflow model fails here, rather than after MLflow has started."""
    if _SCHEME.match(uri):
        return uri
    directory = (workdir / uri).resolve()
    if not (directory / "MLmodel").is_file():
        raise ServingError(f"{uri} is not an MLflow model directory (it has no MLmodel file)")
    return str(directory)
