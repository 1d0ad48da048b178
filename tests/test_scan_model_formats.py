"""Which files the model scanner finds, and that real models pass it.

Directories are scanned by content: every file a loader would load is found whatever its name
(protocol-0 pickles, compressed pickles, PyTorch zips named .pth.tar or .zip, skops files), and
a target without any model file is a finding. Real models of scikit-learn (pickle, joblib in
every compression, skops, an MLflow model directory), LightGBM, XGBoost and PyTorch state
dicts pass with the default policy. No malicious file is ever unpickled.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import lzma
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from mlgate.evidence import Finding
from mlgate.scanners.interface import ScanResult, ScanTargets, at_least
from mlgate.scanners.model_files import ModelFileScanner

MODELS = Path(__file__).parent / "data" / "models"
EXAMPLE = Path(__file__).parents[1] / "examples" / "iris"


class _RunsShellWhenUnpickled:
    """Pickles as a call to os.system; never unpickle what it makes."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _scan(workdir: Path, *paths: Path) -> ScanResult:
    return ModelFileScanner().scan(ScanTargets(workdir=workdir, models=paths))


def _blocking(findings: list[Finding]) -> list[tuple[str | None, str, str]]:
    """Findings that fail the default policy (fail_on.model: high)."""
    return sorted((f.path, f.severity, f.id) for f in findings if at_least(f.severity, "high"))


def _fitted_models() -> dict[str, object]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    features = rng.normal(size=(80, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    return {
        "pipeline": Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
            features, labels
        ),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(features, labels),
        "boosting": HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(
            features, labels
        ),
        "search": GridSearchCV(LogisticRegression(), {"C": [0.5, 1.0]}, cv=2).fit(features, labels),
        "encoder": OneHotEncoder(dtype=np.float32).fit(features[:, :1].round()),
        "kd_tree": KNeighborsClassifier(algorithm="kd_tree").fit(features, labels),
        "ball_tree": KNeighborsClassifier(algorithm="ball_tree").fit(features, labels),
        "seeded": RandomForestClassifier(n_estimators=2, random_state=np.random.RandomState(0)).fit(
            features, labels
        ),
        "columns": Pipeline(
            [
                ("columns", ColumnTransformer([("one_hot", OneHotEncoder(), ["kind"])])),
                ("model", SGDClassifier(random_state=0)),
            ]
        ).fit(pd.DataFrame({"kind": np.where(labels > 0, "a", "b")}), labels),
    }


# --- benign models pass ----------------------------------------------------------------------


def test_scikit_learn_models_pass_in_every_container(tmp_path: Path) -> None:
    paths = []
    for name, model in _fitted_models().items():
        for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
            paths.append(tmp_path / f"{name}.p{protocol}.pkl")
            paths[-1].write_bytes(pickle.dumps(model, protocol=protocol))
        for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
            label = compress[0] if isinstance(compress, tuple) else f"zlib{compress}"
            paths.append(tmp_path / f"{name}.{label}.joblib")
            joblib.dump(model, paths[-1], compress=compress)

    result = _scan(tmp_path, *paths)

    assert _blocking(result.findings) == []
    assert {f.rule for f in result.findings} == {"unsafe-format"}
    assert len(result.data["files"]) == len(paths)


def test_skops_and_mlflow_model_directory_pass_and_are_scanned(tmp_path: Path) -> None:
    import mlflow.sklearn
    from skops.io import dump

    models = _fitted_models()
    (tmp_path / "skops").mkdir()
    for name, model in models.items():
        dump(model, tmp_path / "skops" / f"{name}.skops")
    # The example's own model, saved as its log_model.py logs it (MLflow 3 writes model.skops
    # beside MLmodel, conda.yaml, python_env.yaml, requirements.txt and the input example).
    spec = importlib.util.spec_from_file_location("iris_model", EXAMPLE / "model.py")
    assert spec is not None and spec.loader is not None
    iris = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iris)
    train_x, test_x, train_y, _ = iris.split()
    example = pd.DataFrame(test_x[:3], columns=list(iris.FEATURES))
    mlflow.sklearn.save_model(
        iris.train(train_x, train_y), tmp_path / "model", input_example=example
    )

    result = _scan(tmp_path, tmp_path / "skops", tmp_path / "model")

    assert result.data["files"] == {
        **{f"skops/{name}.skops": "skops" for name in sorted(models)},
        "model/model.skops": "skops",
    }
    assert result.findings == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("lightgbm_classifier.pkl", "pickle"),
        ("lightgbm_classifier.joblib", "joblib"),
        ("xgboost_classifier.pkl", "pickle"),
        ("xgboost_classifier.joblib", "joblib"),
        ("torch_state_dict.pt", "pytorch"),
        ("checkpoint.pth.tar", "pytorch"),
    ],
)
def test_lightgbm_xgboost_and_pytorch_models_pass(tmp_path: Path, name: str, kind: str) -> None:
    # Real files made by tests/data/models/make_models.py (the libraries are not installed).
    shutil.copy(MODELS / name, tmp_path / name)

    result = _scan(tmp_path, tmp_path / name)

    assert _blocking(result.findings) == []
    assert [f.rule for f in result.findings] == ["unsafe-format"]
    assert result.data["files"] == {name: kind}


# --- directories are scanned by content ----------------------------------------------------


def _torch_zip(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


def test_directory_finds_every_loadable_file_whatever_its_name(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    evil = pickle.dumps(_RunsShellWhenUnpickled(), protocol=2)
    (models / "weights.sav").write_bytes(pickle.dumps(_RunsShellWhenUnpickled(), protocol=0))
    (models / "model").write_bytes(pickle.dumps(_RunsShellWhenUnpickled(), protocol=1))
    joblib.dump(_RunsShellWhenUnpickled(), models / "model.joblib.z", compress=("zlib", 3))
    (models / "model.pkl.gz").write_bytes(gzip.compress(evil))
    (models / "model.pkl.bz2").write_bytes(bz2.compress(evil))
    (models / "model.pkl.xz").write_bytes(lzma.compress(evil))
    (models / "model.pkl.lzma").write_bytes(lzma.compress(evil, format=lzma.FORMAT_ALONE))
    _torch_zip(models / "checkpoint.pth.tar", evil)
    _torch_zip(models / "bundle.zip", evil)
    schema = {
        "__class__": "system",
        "__module__": "posix",
        "__loader__": "FunctionNode",
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    with zipfile.ZipFile(models / "model.skops", "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    # Not models: an MLflow model's metadata files.
    (models / "MLmodel").write_text("artifact_path: model\nflavors:\n  python_function: {}\n")
    (models / "conda.yaml").write_text("channels:\n- conda-forge\ndependencies:\n- python\n")
    (models / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    (models / "input_example.json").write_text('{"columns": ["a"], "data": [[1]]}')

    result = _scan(tmp_path, models)

    assert result.data["files"] == {
        "models/bundle.zip": "pytorch",
        "models/checkpoint.pth.tar": "pytorch",
        "models/model": "pickle",
        "models/model.joblib.z": "joblib",
        "models/model.pkl.bz2": "pickle",
        "models/model.pkl.gz": "pickle",
        "models/model.pkl.lzma": "pickle",
        "models/model.pkl.xz": "pickle",
        "models/model.skops": "skops",
        "models/weights.sav": "pickle",
    }
    blocked = {path for path, _, _ in _blocking(result.findings)}
    assert blocked == set(result.data["files"])
    assert ("models/model.skops", "critical", "skops:posix.system") in _blocking(result.findings)


def test_a_target_without_any_model_file_is_high(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")

    result = _scan(tmp_path, tmp_path / "empty", tmp_path / "metadata", tmp_path / "weights")

    assert _blocking(result.findings) == [
        ("empty", "high", "no-model-file"),
        ("metadata", "high", "no-model-file"),
    ]
    assert result.data["safe_format_files"] == ["weights/model.safetensors"]


def test_a_pickle_named_as_a_safe_format_is_scanned(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(_RunsShellWhenUnpickled()))

    result = _scan(tmp_path, tmp_path)

    assert ("model.safetensors", "critical", "pickle:posix.system") in _blocking(result.findings)


def _legacy_torch_file(main: bytes) -> bytes:
    """torch.save(..., _use_new_zipfile_serialization=False): five pickles (magic number,
    protocol version, system info, the object, storage keys), then raw storage bytes."""
    system_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    header = b"".join(
        pickle.dumps(value, protocol=2) for value in (0x1950A86A20F9469CFC6C, 1001, system_info)
    )
    storage = (2).to_bytes(8, "little") + np.array([0.5, -0.5], dtype="<f4").tobytes()
    return header + main + pickle.dumps(["0"], protocol=2) + storage


def test_legacy_pytorch_files_are_read_to_their_storages(tmp_path: Path) -> None:
    tensor = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n("
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
        b"K\x02Nt"  # ("storage", torch.FloatStorage, "0", "cpu", 2, None)
        b"QK\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR."
    )
    (tmp_path / "legacy.pt").write_bytes(_legacy_torch_file(tensor))
    evil = pickle.dumps(_RunsShellWhenUnpickled(), protocol=2)
    (tmp_path / "evil.pt").write_bytes(_legacy_torch_file(evil))

    result = _scan(tmp_path, tmp_path / "legacy.pt", tmp_path / "evil.pt")

    assert _blocking(result.findings) == [("evil.pt", "critical", "pickle:posix.system")]
    assert [f.rule for f in result.findings if f.path == "legacy.pt"] == ["unsafe-format"]


def test_data_that_only_starts_like_a_pickle_is_not_one(tmp_path: Path) -> None:
    # A safetensors header of 384 bytes starts b"\x80\x01": a pickle protocol header, followed
    # by bytes no unpickler reads past.
    header = b'{"__metadata__":{"pad":"'
    header += b"x" * (384 - len(header) - 3) + b'"}}'
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)

    result = _scan(tmp_path, tmp_path)

    assert (result.data["files"], result.findings) == ({}, [])
    assert result.data["safe_format_files"] == ["model.safetensors"]


def test_raw_tensor_storage_that_starts_like_a_pickle_is_not_read_as_one(tmp_path: Path) -> None:
    # A float32 storage is any bytes: the denormal 0x00000280 is b"\x80\x02\0\0".
    storage = np.array([0x280, 0x3F800000], dtype="<u4").tobytes()
    with (
        zipfile.ZipFile(MODELS / "torch_state_dict.pt") as source,
        zipfile.ZipFile(tmp_path / "model.pt", "w") as copy,
    ):
        for name in source.namelist():
            raw = storage if name.endswith("data/0") else source.read(name)
            copy.writestr(name, raw)

    result = _scan(tmp_path, tmp_path / "model.pt")

    assert [f.rule for f in result.findings] == ["unsafe-format"]
