"""The bandit and model-file scanners on real inputs: real bandit runs over vulnerable code, and
real pickle, joblib, numpy, PyTorch-style and Keras files built here. Nothing is mocked, and no
malicious file is ever unpickled (pickling only calls __reduce__, which returns the payload)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlgate.evidence import Finding
from mlgate.scanners.bandit import BanditScanner
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import ScanTargets
from mlgate.scanners.model_files import ModelFileScanner

# --- bandit ----------------------------------------------------------------------------------

VULNERABLE = '''\
"""Deliberately insecure: every function is a bandit finding."""

import pickle
import subprocess

import yaml

DATABASE_PASSWORD = "hunter2"


def load_model(blob: bytes) -> object:
    return pickle.loads(blob)


def run(command: str) -> int:
    return subprocess.call(command, shell=True)


def read_config(text: str) -> object:
    return yaml.load(text)


def compute(expression: str) -> object:
    return eval(expression)
'''

# (test id, line) bandit 1.9 reports for VULNERABLE.
EXPECTED_BANDIT = {
    ("B403", 3),  # import pickle
    ("B404", 4),  # import subprocess
    ("B105", 8),  # hard-coded password
    ("B301", 12),  # pickle.loads
    ("B602", 16),  # shell=True
    ("B506", 20),  # yaml.load without a safe loader
    ("B307", 24),  # eval
}


def _code_targets(workdir: Path, *sources: str) -> ScanTargets:
    return ScanTargets(workdir=workdir, sources=tuple(workdir / s for s in sources), timeout=60)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_bandit_reports_each_vulnerability_with_id_line_and_cwe(tmp_path: Path) -> None:
    _write(tmp_path / "src" / "app.py", VULNERABLE)

    result = BanditScanner().scan(_code_targets(tmp_path, "src"))

    assert {(f.id, f.line) for f in result.findings} == EXPECTED_BANDIT
    by_id = {f.id: f for f in result.findings}
    shell = by_id["B602"]
    assert shell.severity == "high"
    assert shell.rule == "B602"
    assert shell.title == "subprocess_popen_with_shell_equals_true"
    assert shell.aliases == ["CWE-78"]
    assert shell.path == "src/app.py"
    assert (shell.tool, shell.source, shell.waived_by) == ("bandit", "code", None)
    assert shell.detail is not None and "confidence: high" in shell.detail
    assert by_id["B301"].severity == "medium"
    assert by_id["B301"].aliases == ["CWE-502"]
    assert by_id["B105"].severity == "low"
    assert len({f.fingerprint for f in result.findings}) == len(result.findings)
    assert result.tool_versions["bandit"][0].isdigit()
    assert result.data["loc"] == 13


def test_bandit_fingerprints_survive_moved_code(tmp_path: Path) -> None:
    module = _write(tmp_path / "app.py", VULNERABLE)
    before = BanditScanner().scan(_code_targets(tmp_path, "app.py")).findings
    module.write_text(VULNERABLE.replace("import pickle\n", "import pickle\n\n\n\n"))

    after = BanditScanner().scan(_code_targets(tmp_path, "app.py")).findings

    assert {f.id: f.fingerprint for f in after} == {f.id: f.fingerprint for f in before}
    assert {f.id: f.line for f in after}["B307"] == 27  # moved by three lines


def test_bandit_keeps_identical_lines_apart(tmp_path: Path) -> None:
    # The stage drops findings that share a fingerprint; two identical calls are two problems.
    _write(tmp_path / "twice.py", "x = eval('1')\ny = 2\nx = eval('1')\n")

    findings = BanditScanner().scan(_code_targets(tmp_path, "twice.py")).findings

    assert [(f.id, f.line) for f in findings] == [("B307", 1), ("B307", 3)]
    assert findings[0].fingerprint != findings[1].fingerprint


def test_bandit_reports_a_file_it_cannot_parse(tmp_path: Path) -> None:
    _write(tmp_path / "src" / "broken.py", "def broken(:\n    return 1\n")
    _write(tmp_path / "src" / "fine.py", "VALUE = 1\n")

    findings = BanditScanner().scan(_code_targets(tmp_path, "src")).findings

    assert len(findings) == 1
    [unparsed] = findings
    assert (unparsed.rule, unparsed.id, unparsed.severity) == (
        "unparseable-source",
        "unparseable-source",
        "high",
    )
    assert unparsed.path == "src/broken.py"
    assert "syntax error" in unparsed.message


def test_bandit_finds_nothing_in_clean_code(tmp_path: Path) -> None:
    _write(tmp_path / "clean.py", "def add(a: int, b: int) -> int:\n    return a + b\n")

    result = BanditScanner().scan(_code_targets(tmp_path, "clean.py"))

    assert result.findings == []


def test_bandit_source_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"^bandit: source path does not exist: .*missing"):
        BanditScanner().scan(_code_targets(tmp_path, "missing"))


def test_bandit_not_installed_is_an_error(tmp_path: Path) -> None:
    # A real interpreter without bandit: a fresh virtual environment with nothing in it.
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    _write(tmp_path / "app.py", VULNERABLE)

    with pytest.raises(ScanError) as raised:
        BanditScanner(python=python).scan(_code_targets(tmp_path, "app.py"))

    message = str(raised.value)
    assert message.startswith("bandit: cannot run ")
    assert message.endswith("No module named bandit")
    assert "\n" not in message


def test_bandit_applies_only_with_sources(tmp_path: Path) -> None:
    assert not BanditScanner().applies(ScanTargets(workdir=tmp_path))
    assert BanditScanner().applies(_code_targets(tmp_path, "src"))


# --- model files -----------------------------------------------------------------------------


class _RunsShellWhenUnpickled:
    """Pickles as a call to os.system; never unpickle what it makes."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


SYSTEM = f"{os.system.__module__}.system"  # posix.system here, nt.system on Windows


def _scan_models(workdir: Path, *models: str) -> list[Finding]:
    targets = ScanTargets(workdir=workdir, models=tuple(workdir / m for m in models))
    return ModelFileScanner().scan(targets).findings


def _summary(findings: list[Finding]) -> set[tuple[str, str, str | None]]:
    return {(f.severity, f.rule, f.path) for f in findings}


def _logistic_regression() -> object:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    return LogisticRegression().fit(features, labels)


def test_malicious_pickle_is_critical(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_RunsShellWhenUnpickled()))

    findings = _scan_models(tmp_path, "model.pkl")

    critical = [f for f in findings if f.severity == "critical"]
    assert [(f.id, f.rule, f.path) for f in critical] == [
        (f"pickle:{SYSTEM}", "unsafe-pickle-import", "model.pkl")
    ]
    assert SYSTEM in critical[0].message
    assert (critical[0].tool, critical[0].source, critical[0].waived_by) == (
        "picklescan",
        "model",
        None,
    )
    assert _summary(findings) == {
        ("critical", "unsafe-pickle-import", "model.pkl"),
        ("low", "unsafe-format", "model.pkl"),
    }


def test_benign_sklearn_joblib_gets_only_the_format_note(tmp_path: Path) -> None:
    joblib.dump(_logistic_regression(), tmp_path / "model.joblib")
    joblib.dump(_logistic_regression(), tmp_path / "compressed.joblib", compress=3)

    findings = _scan_models(tmp_path, "model.joblib", "compressed.joblib")

    assert _summary(findings) == {
        ("low", "unsafe-format", "model.joblib"),
        ("low", "unsafe-format", "compressed.joblib"),
    }
    for note in findings:
        assert note.id == "unsafe-format:joblib"
        assert "skops" in note.message
        assert note.detail is not None
        assert "sklearn.linear_model._logistic.LogisticRegression" in note.detail


def test_payload_after_a_joblib_array_is_found(tmp_path: Path) -> None:
    # joblib writes array bytes inside the pickle stream; a parser that stops there (picklescan
    # on its own) never reaches what follows the first array.
    payload = {"weights": np.arange(10.0), "later": _RunsShellWhenUnpickled()}
    joblib.dump(payload, tmp_path / "plain.joblib")
    joblib.dump(payload, tmp_path / "zlib.joblib", compress=3)
    joblib.dump(payload, tmp_path / "gzip.joblib", compress=("gzip", 3))

    findings = _scan_models(tmp_path, "plain.joblib", "zlib.joblib", "gzip.joblib")

    critical = {(f.path, f.id) for f in findings if f.severity == "critical"}
    assert critical == {
        (name, f"pickle:{SYSTEM}") for name in ("plain.joblib", "zlib.joblib", "gzip.joblib")
    }
    assert not [f for f in findings if f.rule == "unscannable-model"]


def test_joblib_with_every_kind_of_array_is_read_to_the_end(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    features = np.random.default_rng(1).normal(size=(40, 3))
    forest = RandomForestClassifier(n_estimators=3, random_state=0)
    forest.fit(features, features[:, 0] > 0)
    arrays = {
        "forest": forest,  # structured arrays (tree nodes)
        "objects": np.array([{"a": 1}, None], dtype=object),  # a nested pickle
        "fortran": np.asfortranarray(np.ones((3, 4), dtype="f4")),
        "text": np.array(["ab", "c"]),
        "times": np.array(["2020-01-01"], dtype="M8[ns]"),
        "empty": np.zeros((0, 5)),
        "scalar": np.float64(2.5),
    }
    joblib.dump(arrays, tmp_path / "mixed.joblib")
    joblib.dump({"x": np.arange(5)}, tmp_path / "protocol0.joblib", protocol=0)
    joblib.dump({"x": np.arange(5)}, tmp_path / "protocol2.joblib", protocol=2)

    findings = _scan_models(tmp_path, "mixed.joblib", "protocol0.joblib", "protocol2.joblib")

    assert {f.rule for f in findings} == {"unsafe-format"}


def test_unreadable_model_files_are_high(tmp_path: Path) -> None:
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as torch_like:
        torch_like.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
        torch_like.writestr("archive/version", "3\n")
        torch_like.writestr("archive/data/0", b"\0" * 4096)
    whole = archive.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    garbage = bytes(range(256)) * 4
    (tmp_path / "garbage.joblib").write_bytes(garbage)
    (tmp_path / "garbage.pt").write_bytes(garbage)
    (tmp_path / "empty.pkl").write_bytes(b"")
    (tmp_path / "truncated.pkl").write_bytes(pickle.dumps(_logistic_regression())[:-40])

    broken = {"truncated.pt", "garbage.joblib", "garbage.pt", "empty.pkl", "truncated.pkl"}

    findings = _scan_models(tmp_path, "model.pt", *sorted(broken))

    assert {f.path for f in findings if f.rule == "unscannable-model"} == broken
    assert {f.severity for f in findings if f.rule == "unscannable-model"} == {"high"}
    assert not [f for f in findings if f.severity == "critical"]
    # The intact archive is only a pickle-format note.
    assert _summary([f for f in findings if f.path == "model.pt"]) == {
        ("low", "unsafe-format", "model.pt")
    }


def test_truncated_malicious_pickle_reports_the_import_it_reached(tmp_path: Path) -> None:
    # pickle runs each call as it reads; a payload before the break still runs.
    whole = pickle.dumps([_RunsShellWhenUnpickled(), list(range(100))])
    (tmp_path / "cut.pkl").write_bytes(whole[:-20])

    findings = _scan_models(tmp_path, "cut.pkl")

    assert {(f.severity, f.rule) for f in findings} >= {
        ("critical", "unsafe-pickle-import"),
        ("high", "unscannable-model"),
    }


def test_numpy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.arange(5))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    np.savez(tmp_path / "evil.npz", ok=np.arange(3), bad=np.array([_RunsShellWhenUnpickled()]))

    findings = _scan_models(tmp_path, "plain.npy", "objects.npy", "evil.npz")

    assert _summary(findings) == {
        ("low", "unsafe-format", "objects.npy"),
        ("critical", "unsafe-pickle-import", "evil.npz"),
        ("low", "unsafe-format", "evil.npz"),
    }
    assert {f.id for f in findings if f.path == "objects.npy"} == {"unsafe-format:numpy"}


def _keras_archive(path: Path, layers: list[dict[str, object]]) -> Path:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": layers},
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def test_keras_lambda_layer_is_high(tmp_path: Path) -> None:
    dense = {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense"}}
    run_code = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "shell",
            "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}},
        },
    }
    _keras_archive(tmp_path / "lambda.keras", [dense, run_code])
    _keras_archive(tmp_path / "plain.keras", [dense])
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (tmp_path / "only.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))

    names = ("lambda.keras", "plain.keras", "broken.keras", "legacy.h5", "only.weights.h5")
    targets = ScanTargets(workdir=tmp_path, models=tuple(tmp_path / name for name in names))

    result = ModelFileScanner().scan(targets)

    assert _summary(result.findings) == {
        ("high", "keras-lambda-layer", "lambda.keras"),
        ("high", "unscannable-model", "broken.keras"),
        ("high", "unscannable-model", "legacy.h5"),
    }
    [lambda_layer] = [f for f in result.findings if f.rule == "keras-lambda-layer"]
    assert lambda_layer.id == "keras:Lambda"
    assert "'shell'" in lambda_layer.message
    assert result.data["safe_format_files"] == ["only.weights.h5"]


def test_directory_is_walked_for_model_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "nested").mkdir(parents=True)
    (models / "nested" / "evil.pickle").write_bytes(pickle.dumps(_RunsShellWhenUnpickled()))
    (models / "renamed.sav").write_bytes(pickle.dumps(_RunsShellWhenUnpickled(), protocol=4))
    (models / "weights.safetensors").write_bytes(b"{}")
    (models / "onnx-data.bin").write_bytes(b"\x08\x07raw tensor bytes")  # not a torch file
    (models / "README.md").write_text("a model")

    result = ModelFileScanner().scan(ScanTargets(workdir=tmp_path, models=(models,)))

    assert {(f.path, f.id) for f in result.findings if f.severity == "critical"} == {
        ("models/nested/evil.pickle", f"pickle:{SYSTEM}"),
        ("models/renamed.sav", f"pickle:{SYSTEM}"),
    }
    assert result.data["files"] == {
        "models/nested/evil.pickle": "pickle",
        "models/renamed.sav": "pickle",
    }
    assert result.data["safe_format_files"] == ["models/weights.safetensors"]
    assert result.tool_versions == {"picklescan": version("picklescan")}


def test_model_fingerprints_are_stable_and_distinct(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(_RunsShellWhenUnpickled()))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(_RunsShellWhenUnpickled()))

    first = _scan_models(tmp_path, "a.pkl", "b.pkl")
    again = _scan_models(tmp_path, "a.pkl", "b.pkl")

    assert [f.fingerprint for f in first] == [f.fingerprint for f in again]
    assert len({f.fingerprint for f in first}) == len(first) == 4


def test_model_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"^picklescan: model path does not exist: .*gone\.pkl$"):
        _scan_models(tmp_path, "gone.pkl")


def test_model_scanner_applies_only_with_models(tmp_path: Path) -> None:
    assert not ModelFileScanner().applies(ScanTargets(workdir=tmp_path))
    assert ModelFileScanner().applies(ScanTargets(workdir=tmp_path, models=(tmp_path,)))


def test_picklescan_is_imported_only_when_scanning() -> None:
    code = (
        "import sys, mlgate.scanners.model_files, mlgate.scanners.bandit; "
        "print('picklescan' in sys.modules, 'numpy' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.split() == ["False", "False"]
