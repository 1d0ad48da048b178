"""Regenerate the benign model files the model scanner must pass, for the libraries the test
environment does not install (tests build scikit-learn, joblib and skops files themselves):

- LightGBM and XGBoost classifiers through their scikit-learn API, pickled and joblib-dumped
  (lightgbm 4.7.0 and xgboost-cpu 3.2.0 from PyPI made the committed files);
- a PyTorch state dict of a Linear(4, 2) layer in torch.save's zip format. torch is not
  installed (its PyPI wheel pulls gigabytes of CUDA libraries), so the file is written here
  following torch's documented layout (torch/serialization.py): a zip whose folder holds
  `data.pkl` (protocol 2; tensors pickled as torch._utils._rebuild_tensor_v2 with persistent ids
  ("storage", torch.FloatStorage, key, "cpu", numel)), `data/<key>` (raw little-endian storage),
  `byteorder`, `version` and `.data/serialization_id`. It is written twice: as model.pt and
  as checkpoint.pth.tar (the name torch users give checkpoints; the content is the same zip).

    pip install --target /tmp/gen lightgbm xgboost-cpu
    PYTHONPATH=/tmp/gen python tests/data/models/make_models.py
"""

from __future__ import annotations

import collections
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np

HERE = Path(__file__).parent


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(80, 4))
    return features, (features[:, 0] + features[:, 1] > 0).astype(int)


def boosted_models() -> None:
    import lightgbm
    import xgboost

    features, labels = training_data()
    lgbm = lightgbm.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(features, labels)
    xgb = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(features, labels)
    (HERE / "lightgbm_classifier.pkl").write_bytes(pickle.dumps(lgbm))
    joblib.dump(lgbm, HERE / "lightgbm_classifier.joblib", compress=3)
    (HERE / "xgboost_classifier.pkl").write_bytes(pickle.dumps(xgb))
    joblib.dump(xgb, HERE / "xgboost_classifier.joblib")


# --- PyTorch, without torch ------------------------------------------------------------------


def _stand_in_torch() -> tuple[Any, Any]:
    """Modules named like torch's, holding only what the pickler must find by name."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:  # pickled by name, as torch.FloatStorage
        pass

    def _rebuild_tensor_v2(*args: object) -> None:  # pickled by name only
        raise AssertionError("never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    sys.modules.update({"torch": torch, "torch._utils": utils})
    return FloatStorage, _rebuild_tensor_v2


class _Storage:
    def __init__(self, key: str, values: list[float]) -> None:
        self.key, self.values = key, values


class _Tensor:
    def __init__(self, storage: _Storage, size: tuple[int, ...], rebuild: Any) -> None:
        self.storage, self.size, self.rebuild = storage, size, rebuild

    def __reduce__(self) -> tuple[object, ...]:
        stride = (self.size[1], 1) if len(self.size) == 2 else (1,)
        hooks: collections.OrderedDict[str, object] = collections.OrderedDict()
        return (self.rebuild, (self.storage, 0, self.size, stride, False, hooks))


class _TorchPickler(pickle.Pickler):
    def __init__(self, file: Any, storage_type: type) -> None:
        super().__init__(file, protocol=2)
        self.storage_type = storage_type

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):
            return ("storage", self.storage_type, obj.key, "cpu", len(obj.values))
        return None


def torch_state_dict(path: Path, folder: str) -> None:
    storage_type, rebuild = _stand_in_torch()
    try:
        weight = _Storage("0", [0.1 * i for i in range(8)])
        bias = _Storage("1", [0.5, -0.5])
        state: collections.OrderedDict[str, object] = collections.OrderedDict(
            [("weight", _Tensor(weight, (2, 4), rebuild)), ("bias", _Tensor(bias, (2,), rebuild))]
        )
        state._metadata = collections.OrderedDict([("", {"version": 1})])  # type: ignore[attr-defined]
        import io

        buffer = io.BytesIO()
        _TorchPickler(buffer, storage_type).dump(state)
    finally:
        for name in ("torch", "torch._utils"):
            sys.modules.pop(name, None)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/data.pkl", buffer.getvalue())
        archive.writestr(f"{folder}/byteorder", "little")
        for storage in (weight, bias):
            raw = struct.pack(f"<{len(storage.values)}f", *storage.values)
            archive.writestr(f"{folder}/data/{storage.key}", raw)
        archive.writestr(f"{folder}/version", "3\n")
        archive.writestr(f"{folder}/.data/serialization_id", "0" * 40)


if __name__ == "__main__":
    boosted_models()
    torch_state_dict(HERE / "torch_state_dict.pt", "torch_state_dict")
    torch_state_dict(HERE / "checkpoint.pth.tar", "archive")
