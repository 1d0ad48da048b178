"""The model guard refuses what MLflow would load from outside the scanned model directory
(stages.mlmodel_paths) and never skips a `file:` model it cannot find, with real files: the
malicious pickle of tests/test_model_guard.py (never executed here) placed where MLmodel points,
behind a symlink, or a loader module on `code_paths`. Every refusal asserts the payload's marker
file was never created."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest

from mlgate.stages import mlmodel_paths, model_guard
from mlgate.stages.interface import RunContext
from mlgate.stages.scan.model_digests import model_digests
from tests.test_model_guard import MLMODEL, load, malicious_model, quality


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


def test_a_pickle_mlmodel_points_outside_the_directory_is_refused(
    tmp_path: Path, marker: Path
) -> None:
    outside = malicious_model(tmp_path / "outside", marker)
    (outside / "model.pkl").rename(tmp_path / "payload.pkl")
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(MLMODEL.replace("model.pkl", "../payload.pkl"))
    try:
        result = quality(tmp_path, str(model))
    finally:  # unpickled, the payload runs first
        assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None
    assert result.reason.startswith("candidate: model scan failed: model: MLmodel"), result.reason
    assert "model_path points outside the model directory: ../payload.pkl" in result.reason


def test_a_symlinked_subdirectory_is_refused(tmp_path: Path, marker: Path) -> None:
    outside = malicious_model(tmp_path / "outside", marker)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights").symlink_to(outside, target_is_directory=True)
    (model / "MLmodel").write_text(MLMODEL.replace("model.pkl", "weights/model.pkl"))
    try:
        result = quality(tmp_path, str(model))
    finally:
        assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None
    assert "holds a symlink, which the loader follows: weights" in result.reason, result.reason


def test_code_paths_are_refused(tmp_path: Path, marker: Path) -> None:
    """A loader module on the model's code path runs when MLflow loads the model."""
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "mlgate_test_loader.py").write_text(
        "import os\n\n\ndef _load_pyfunc(path):\n"
        f"    os.system({f'touch {shlex.quote(str(marker))}'!r})\n"
    )
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlgate_test_loader\n    code: code\n"
        "    python_version: 3.11.7\nmlflow_version: 3.1.0\n"
    )
    try:
        result = quality(tmp_path, str(model))
    finally:
        assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None
    assert "names code MLflow runs on load: code: code" in result.reason, result.reason


@pytest.mark.parametrize("form", ["file:{path}", "file://localhost{path}", "file://{quoted}"])
def test_a_file_uri_is_scanned_not_skipped(tmp_path: Path, marker: Path, form: str) -> None:
    evil = malicious_model(tmp_path / "evil model", marker)
    uri = form.format(path=evil, quoted=quote(str(evil)))
    result = load(tmp_path, {"source": "mlflow", "model_uri": uri})
    assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None
    assert result.reason.startswith("model scan failed: evil model:"), result.reason
    assert "system" in result.reason


def test_a_file_uri_to_a_missing_model_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = load(tmp_path, {"source": "mlflow", "model_uri": f"file:{missing}"})
    assert result.status == "error"
    assert result.reason == (
        f"model scan failed: {missing} does not exist; load did not load the model"
    )


def test_unreadable_model_files_are_a_refusal_not_a_crash(tmp_path: Path) -> None:
    """Reading /proc/self/mem from its start fails with EIO: an OSError while digesting."""
    unreadable = Path("/proc/self/mem")
    refused = model_guard.refusal(RunContext(tmp_path / "evidence", None), "quality", unreadable)
    assert refused is not None
    assert refused.startswith("model scan failed: cannot read the model's files: ")
    assert refused.endswith("quality did not load the model")
    assert model_digests((unreadable,)) == []  # not vouched for, not a crash


def write_model(directory: Path, flavors: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "MLmodel").write_text(f"flavors:\n{flavors}mlflow_version: 3.1.0\n")
    return directory


SKLEARN_PYFUNC = (
    "  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.skops\n"
)


@pytest.mark.parametrize(
    ("flavors", "named"),
    [
        ("  sklearn:\n    pickled_model: /etc/payload.pkl\n", "sklearn.pickled_model"),
        (
            "  python_function:\n    loader_module: mlflow.pyfunc.model\n    data: a/../../x\n",
            "data",
        ),
        (
            "  python_function:\n    loader_module: mlflow.pyfunc.model\n"
            "    python_model: python_model.pkl\n"
            "    artifacts:\n      weights:\n        path: ../weights.pkl\n        uri: /src/w\n",
            "python_function.artifacts.weights.path",
        ),
        (
            "  python_function:\n    loader_module: mlflow.pyfunc.model\n    python_model: m.py\n",
            "model from code",
        ),
        ("  python_function:\n    loader_module: evil.loader\n", "loader_module: evil.loader"),
        ("  python_function:\n    model_path: model.pkl\n", "loader_module: None"),
        (SKLEARN_PYFUNC + "    code_paths:\n    - helpers\n", "code_paths"),
    ],
)
def test_mlmodel_naming_outside_files_or_code_is_refused(
    tmp_path: Path, flavors: str, named: str
) -> None:
    why = mlmodel_paths.escape(write_model(tmp_path / "model", flavors))
    assert why is not None and named in why, why


def test_an_mlflow_sklearn_model_is_not_refused(tmp_path: Path) -> None:
    """As MLflow 3 writes the example's skops model: `code: null`, paths inside, the original
    uri of an artifact outside (provenance, not read)."""
    flavors = (
        SKLEARN_PYFUNC + "    code: null\n    predict_fn: predict\n    python_version: 3.11.7\n"
        "    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n"
        "    artifacts:\n      extra:\n        path: artifacts/extra.json\n        uri: /src/e\n"
        "  sklearn:\n    code: null\n    pickled_model: model.skops\n"
        "    serialization_format: skops\n    sklearn_version: 1.5.0\n"
    )
    model = write_model(tmp_path / "model", flavors)
    (model / "model.skops").write_bytes(b"PK\x03\x04")
    assert mlmodel_paths.escape(model) is None
    assert mlmodel_paths.escape(tmp_path / "not-a-model") is None
    os.symlink(model / "model.skops", model / "linked.skops")
    assert "symlink" in (mlmodel_paths.escape(model) or "")
