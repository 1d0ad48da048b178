"""What MLflow loads besides the files of a model directory, read from its MLmodel file.

The model guard scans the files inside a model directory, but MLflow loads what MLmodel names:
a flavor path joined onto the directory (`pickled_model: ../payload.pkl`, an absolute path), a
symlinked file or subdirectory (which the loader follows), and Python it runs on load
(`code_paths` put first on sys.path, a `loader_module` outside MLflow, a model from code whose
`python_model` is a .py file). Such a model is refused before it is scanned: the scan could not
vouch for what would run.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlgate import safe_yaml
from mlgate.errors import MlgateError

# Flavor keys whose values are paths MLflow joins onto the model directory.
_PATH_KEYS = frozenset(
    {"pickled_model", "model_path", "data", "python_model", "model_code_path", "path", "artifacts"}
)
_PATH_SUFFIXES = ("_path", "_paths", "_dir", "_file", "_files", "_model", "_data")
# Keys naming Python that MLflow imports or runs when it loads the model.
_CODE_KEYS = ("code", "code_paths", "model_code_path")
# Keys holding where a file came from, not where MLflow reads it (artifacts' original uri).
_PROVENANCE_KEYS = frozenset({"uri"})


def escape(directory: Path) -> str | None:
    """Why loading the MLflow model in `directory` would read files outside it or run code
    from it (one line naming the key and the path), or None when it would not."""
    if not directory.is_dir():
        return None
    root = directory.resolve()
    if linked := _first_symlink(root):
        return f"the model directory holds a symlink, which the loader follows: {linked}"
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        return None  # not an MLflow model: nothing names other files
    try:
        document = safe_yaml.load(mlmodel.read_text(encoding="utf-8"), timestamps_as_text=True)
    except (MlgateError, OSError, UnicodeDecodeError) as exc:
        return f"MLmodel cannot be read: {' '.join(str(exc).split())[:200]}"
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict):
        return "MLmodel names no flavors"
    for flavor, conf in flavors.items():
        if not isinstance(conf, dict):
            continue
        if why := _runs_code(str(flavor), conf) or _leaves(root, str(flavor), conf):
            return why
    return None


def _first_symlink(root: Path) -> str | None:
    for top, dirs, files in os.walk(root):  # does not follow symlinked directories
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(top, name)):
                return Path(top, name).relative_to(root).as_posix()
    return None


def _runs_code(flavor: str, conf: dict[Any, Any]) -> str | None:
    for key in _CODE_KEYS:
        if conf.get(key) not in (None, "", [], {}):
            return f"MLmodel flavor {flavor} names code MLflow runs on load: {key}: {conf[key]}"
    python_model = conf.get("python_model")
    if isinstance(python_model, str) and python_model.lower().endswith(".py"):
        return f"MLmodel flavor {flavor} is a model from code: python_model: {python_model}"
    if flavor == "python_function":
        loader = conf.get("loader_module")
        if not isinstance(loader, str) or not loader.startswith("mlflow."):
            shown = f"loader_module: {loader}"
            return f"MLmodel flavor python_function loads a module outside MLflow: {shown}"
    return None


def _leaves(root: Path, where: str, value: Any, key: str = "") -> str | None:
    """The first path under a path-valued key of `value` that resolves outside `root`."""
    if isinstance(value, dict):
        for child, inner in value.items():
            name = str(child)
            if name in _PROVENANCE_KEYS:
                continue
            # Inside a path-valued key (artifacts: {name: {path: ...}}) every value is a path.
            nested = key if key in _PATH_KEYS or key.endswith(_PATH_SUFFIXES) else name
            if why := _leaves(root, f"{where}.{name}", inner, nested):
                return why
        return None
    if isinstance(value, list):
        for inner in value:
            if why := _leaves(root, where, inner, key):
                return why
        return None
    if not isinstance(value, str) or not (key in _PATH_KEYS or key.endswith(_PATH_SUFFIXES)):
        return None
    if _outside(root, value):
        return f"MLmodel {where} points outside the model directory: {value}"
    return None


def _outside(root: Path, value: str) -> bool:
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        return True
    if PureWindowsPath(value).drive or value.startswith("\\"):
        return True
    return not (root / value).resolve().is_relative_to(root)
