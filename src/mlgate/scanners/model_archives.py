"""Model files that are archives or headers around pickles, read without loading them:

- zip archives: PyTorch's (`archive/data.pkl` plus raw storages, whatever the file's name),
  NumPy's .npz (a .npy per array), skops (schema.json names every type it builds) and Keras
  (config.json, where Lambda layers keep Python code);
- .npy files, whose data is a pickle when the dtype holds Python objects.

Every pickle inside is walked by the symbolic machine for its imports; every type a skops schema
names is an import too (skops builds it by module and name), judged by the same allow list.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mlgate.scanners.model_sniff import looks_pickled
from mlgate.scanners.numpy_dtypes import NPY_MAGIC, npy_holds_objects
from mlgate.scanners.pickle_machine import Global, Import, Malformed, describe, read_imports

_PICKLE_SUFFIXES = (".pkl", ".pickle")


@dataclass
class Reading:
    imports: list[Import] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pickled: bool = False  # some pickle data was found (and walked)
    lambda_layers: list[str] = field(default_factory=list)  # Keras Lambda layers


def read_npy_file(path: Path) -> Reading:
    reading = Reading()
    try:
        with path.open("rb") as handle:
            _read_npy(handle, path.name, reading)
    except Exception as exc:  # unreadable: a finding
        reading.problems.append(describe(exc))
    return reading


def read_zip(path: Path, kind: str) -> Reading:
    """Every pickle, object array and named type in a zip archive of `kind`."""
    reading = Reading()
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    _read_member(archive, info, kind, reading)
    except Exception as exc:  # a corrupt or foreign archive: not scanned, a finding
        reading.problems.append(describe(exc))
    return reading


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, reading: Reading
) -> None:
    # Opened by its ZipInfo, not its name: a repeated name would open the last entry each time.
    name = info.filename
    if kind == "keras" and name == "config.json":
        reading.lambda_layers.extend(_lambda_layers(json.loads(archive.read(info))))
        return
    if kind == "skops" and name == "schema.json":
        reading.imports.extend(
            Import(found, 0, "skops") for found in _skops_types(json.loads(archive.read(info)))
        )
        return
    with archive.open(info) as member:
        head = member.read(len(NPY_MAGIC))
    if head.startswith(NPY_MAGIC):
        with archive.open(info) as member:
            _read_npy(member, name, reading)
    elif name.endswith(_PICKLE_SUFFIXES) or _member_pickled(archive, info):
        # Raw tensor storages (PyTorch's data/0...) are neither, whatever their first byte.
        with archive.open(info) as member:
            _read_pickle(member, name, reading)


def _member_pickled(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    with archive.open(info) as member:
        return looks_pickled(member)


def _read_npy(handle: IO[bytes], name: str, reading: Reading) -> None:
    if npy_holds_objects(handle):
        _read_pickle(handle, name, reading)


def _read_pickle(handle: IO[bytes], name: str, reading: Reading) -> None:
    reading.pickled = True
    walked = read_imports(handle)
    reading.imports.extend(walked.imports)
    if walked.problem:
        reading.problems.append(f"{name}: {walked.problem}")


def _skops_types(node: object) -> Iterator[Global]:
    """The (module, name) of every object, function, type and method a skops schema builds."""
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if module is not None or name is not None:
            if not (isinstance(module, str) and isinstance(name, str)):
                raise Malformed("skops schema names a type that is not a string")
            content = node.get("content")
            if node.get("__loader__") == "MethodNode" and isinstance(content, dict):
                name = f"{name}.{content.get('func')}"  # a method: never on the allow list
            yield Global(module, name)
        for value in node.values():
            yield from _skops_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _skops_types(value)


def _lambda_layers(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            config = node.get("config")
            yield str(config.get("name") if isinstance(config, dict) else None)
        for value in node.values():
            yield from _lambda_layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _lambda_layers(value)
