"""Pickles that once passed both model engines: a file whose first opcode is none of the
headers looked for (a long BINBYTES of padding, protocol 1's header, a FRAME, a short string)
and whose import comes after the first 64 KB; an unrecognised binary file next to a model (a
loader may be pointed at it: MLmodel's pickled_model names any file); a zip whose repeated
member name hid the first entry. Crafted bytes, checked with pickletools, never unpickled."""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import pytest

from mlgate.evidence import Finding
from mlgate.scanners.fickling_scan import FicklingScanner
from mlgate.scanners.interface import Scanner, ScanTargets, at_least
from mlgate.scanners.model_files import ModelFileScanner

ENGINES = [ModelFileScanner, FicklingScanner]


def _short(text: str) -> bytes:
    return b"\x8c" + len(text).to_bytes(1, "little") + text.encode()


# os.system("echo owned") by STACK_GLOBAL and REDUCE, then STOP.
_CALL = _short(os.system.__module__) + _short("system") + b"\x93" + _short("echo owned") + b"\x85R."
_PADDED = b"B" + (100_000).to_bytes(4, "little") + bytes(100_000) + b"0" + _CALL
PAYLOADS = {
    "binbytes-padding": _PADDED,
    "protocol-1-header": b"\x80\x01" + _PADDED,
    "frame": b"\x95" + len(_PADDED).to_bytes(8, "little") + _PADDED,
    "short-string": _short("x") + b"0" + _PADDED,
}


def _blocking(engine: type[Scanner], workdir: Path, target: Path) -> list[Finding]:
    result = engine().scan(ScanTargets(workdir=workdir, models=(target,)))
    return [f for f in result.findings if at_least(f.severity, "high")]


def _mlflow_directory(root: Path, weights: bytes) -> Path:
    model = root / "model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: weights.bin\n    serialization_format: pickle\n"
    )
    (model / "conda.yaml").write_text("channels:\n- conda-forge\ndependencies:\n- python=3.11\n")
    (model / "model.pkl").write_bytes(pickle.dumps({"coef": [1.0, 2.0]}, protocol=4))
    (model / "weights.bin").write_bytes(weights)
    return model


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.__name__)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_pickle_without_a_known_header_is_caught(
    tmp_path: Path, engine: type[Scanner], payload: str
) -> None:
    data = PAYLOADS[payload]
    assert [op.name for op, _, _ in pickletools.genops(data)][-3:] == ["TUPLE1", "REDUCE", "STOP"]
    model = _mlflow_directory(tmp_path, data)
    blocking = _blocking(engine, tmp_path, model)
    assert {f.path for f in blocking} == {"model/weights.bin"}


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.__name__)
def test_an_unrecognised_binary_file_is_high_and_text_is_not(
    tmp_path: Path, engine: type[Scanner]
) -> None:
    model = _mlflow_directory(tmp_path, b"\x00\x01\x02 not any format " * 100)
    assert {f.path for f in _blocking(engine, tmp_path, model)} == {"model/weights.bin"}
    (model / "weights.bin").write_text("plain text, readable by no unpickler\n")
    assert _blocking(engine, tmp_path, model) == []


def test_a_repeated_zip_member_name_does_not_hide_the_first_entry(tmp_path: Path) -> None:
    harmful = b"\x80\x02" + _CALL
    benign = pickle.dumps({"weights": [0.5]}, protocol=2)
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as written, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": the point of the test
        written.writestr("archive/data.pkl", harmful)
        written.writestr("archive/data.pkl", benign)
    blocking = _blocking(ModelFileScanner, tmp_path, archive)
    assert blocking and all(f.path == "model.pt" for f in blocking)
