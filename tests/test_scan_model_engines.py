"""Two model-file engines behind the scanner interface: picklescan and fickling (its interpreter
over pickle streams, judged by an allow list). A model file passes only when every engine finds
it clean; benign scikit-learn, XGBoost, LightGBM and PyTorch state-dict files must pass; the
payloads a deny list misses must not. Real files, real tools; nothing is unpickled."""

from __future__ import annotations

import io
import marshal
import os
import pickle
import pickletools
import struct
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate.evidence import Evidence
from mlgate.scanners import SCANNERS
from mlgate.scanners.interface import ScanTargets
from mlgate.stages.interface import RunContext
from mlgate.stages.scan.config import ScanConfig, ScanPolicy
from mlgate.stages.scan.stage import ScanStage

STAGE = ScanStage()
SYSTEM = f"{os.system.__module__}.system"  # posix.system here


# --- files made here -------------------------------------------------------------------------


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    return b"X" + len(value.encode()).to_bytes(4, "little") + value.encode()


def _call(module: str, name: str, *args: bytes) -> bytes:
    """GLOBAL module.name, MARK, args, TUPLE, REDUCE: a call when unpickled."""
    return _global(module, name) + b"(" + b"".join(args) + b"tR"


def _pickled(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _bytes(data: bytes) -> bytes:
    return b"B" + len(data).to_bytes(4, "little") + data


PAYLOADS = {
    # os.system through REDUCE: the classic.
    "os-system": _pickled(_call(os.system.__module__, "system", _text("echo owned"))),
    # A loader that unpickles nested bytes: the inner pickle is never seen by a scanner.
    "nested-loads": _pickled(
        _call("_pickle", "loads", _bytes(_pickled(_call("posix", "system", _text("id")))))
    ),
    # marshal plus a function constructor: code objects built and called.
    "marshal-function": _pickled(
        _global("types", "FunctionType")
        + b"("
        + _call("marshal", "loads", _bytes(marshal.dumps(compile("1", "<x>", "eval"))))
        + b"}tR)R"
    ),
    "exec": _pickled(_call("builtins", "exec", _text("import os"))),
    "eval": _pickled(_call("builtins", "eval", _text("1 + 1"))),
    # getattr(__import__('os'), 'system')('id')
    "getattr-chain": _pickled(
        _global("builtins", "getattr")
        + b"("
        + _call("builtins", "__import__", _text("os"))
        + _text("system")
        + b"tR("
        + _text("id")
        + b"tR"
    ),
    # STACK_GLOBAL whose operands come from the memo (picklescan records None.None).
    # Protocol 0, text floats included: no PROTO marker to recognise it by.
    "protocol-0": b"(dp0\nVweights\np1\nF0.5\nsVlater\np2\ncposix\nsystem\np3\n(Vid\np4\ntp5\n"
    b"Rp6\ns.",
    "stack-global-memo": b"\x80\x04\x8c\x05posix\x940\x8c\x06system\x940h\x00h\x01\x93"
    b"\x8c\x02id\x85R.",
}


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


def _features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    return features, (features[:, 0] + features[:, 1] > 0).astype(int)


def _torch_state_dict(path: Path) -> Path:
    """The zip torch.save writes for a state dict of two float tensors (written by hand: the
    format is what is scanned, and torch is a gigabyte)."""
    entries = b""
    for index, name in enumerate(("fc.weight", "fc.bias")):
        storage = b"(" + _text("storage") + _global("torch", "FloatStorage")
        storage += _text(str(index)) + _text("cpu") + b"K\x06tQ"
        entries += _text(name) + _global("torch._utils", "_rebuild_tensor_v2")
        entries += b"(" + storage + b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89"
        entries += _global("collections", "OrderedDict") + b")RtR"
    data = _pickled(_global("collections", "OrderedDict") + b")R(" + entries + b"u")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", struct.pack("<6f", *range(6)))
        archive.writestr("archive/data/1", struct.pack("<6f", *range(6)))
        archive.writestr("archive/version", "3\n")
    return path


def _benign_models(directory: Path) -> list[str]:
    import cloudpickle
    import lightgbm
    import xgboost
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = _features()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(features, labels)
    boosted = HistGradientBoostingClassifier(max_iter=3).fit(features, labels)
    xgb = xgboost.XGBClassifier(n_estimators=3).fit(features, labels)
    lgbm = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(features, labels)
    (directory / "forest.pkl").write_bytes(pickle.dumps(forest))
    # Protocol 5 (in-band buffers, as cloudpickle and MLflow's older sklearn format write) and
    # protocol 0 (text opcodes): opcodes fickling itself cannot parse.
    (directory / "forest-cloudpickle.pkl").write_bytes(cloudpickle.dumps(forest))
    (directory / "pipeline-protocol5.pkl").write_bytes(pickle.dumps(pipeline, protocol=5))
    (directory / "pipeline-protocol0.pkl").write_bytes(pickle.dumps(pipeline, protocol=0))
    (directory / "boosted.pkl").write_bytes(pickle.dumps(boosted))
    joblib.dump(pipeline, directory / "pipeline.joblib")
    joblib.dump(pipeline, directory / "pipeline-z.joblib", compress=3)
    joblib.dump(forest, directory / "forest.pkl.gz", compress=("gzip", 3))
    (directory / "xgboost.pkl").write_bytes(pickle.dumps(xgb))
    joblib.dump(xgb, directory / "xgboost.joblib")
    (directory / "lightgbm.pkl").write_bytes(pickle.dumps(lgbm))
    _torch_state_dict(directory / "state_dict.pt")
    return sorted(p.name for p in directory.iterdir())


# --- the stage, in process -------------------------------------------------------------------


def _scan(tmp_path: Path, models: list[str], **config: object) -> Evidence:
    settings = ScanConfig.model_validate(
        {"models": models, "working_directory": str(tmp_path), **config}
    )
    return STAGE.run(settings, RunContext(tmp_path / "evidence", None))


def _passes(evidence: Evidence) -> bool:
    rules = STAGE.evaluate(ScanPolicy(), evidence)
    return evidence.status == "passed" and all(r.outcome == "pass" for r in rules)


def test_benign_models_of_every_library_pass_every_model_engine(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    names = _benign_models(tmp_path / "models")

    evidence = _scan(tmp_path, ["models"])

    assert evidence.status == "passed", evidence.reason
    assert {"picklescan", "fickling"} <= set(evidence.data["scanners"])
    assert [f for f in evidence.findings if f.severity in ("critical", "high")] == []
    assert _passes(evidence)
    # fickling read each of them (a pickle stream each; the state dict's data.pkl member).
    read = evidence.data["fickling"]["files"]
    assert sorted(Path(p).name for p in read) == names
    assert read["models/state_dict.pt"] == ["archive/data.pkl"]


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_payloads_a_deny_list_misses_fail_the_gate(tmp_path: Path, payload: str) -> None:
    (tmp_path / "model.pkl").write_bytes(PAYLOADS[payload])

    evidence = _scan(tmp_path, ["model.pkl"])

    caught = [f for f in evidence.findings if f.tool == "fickling" and f.severity == "critical"]
    assert caught, evidence.findings
    assert all(f.path == "model.pkl" and f.source == "model" for f in caught)
    assert not _passes(evidence)


def test_a_payload_after_joblib_arrays_and_in_compressed_files_is_found(tmp_path: Path) -> None:
    payload = {"weights": np.arange(10.0), "matrix": np.ones((3, 2)), "later": _Payload()}
    joblib.dump(payload, tmp_path / "plain.joblib")
    joblib.dump(payload, tmp_path / "zlib.joblib", compress=3)
    joblib.dump(payload, tmp_path / "model.pkl.gz", compress=("gzip", 3))

    result = SCANNERS["fickling"].scan(
        ScanTargets(workdir=tmp_path, models=(tmp_path,))  # a directory: found by content
    )

    assert {(f.path, f.id, f.severity) for f in result.findings} == {
        (name, f"fickling:{SYSTEM}", "critical")
        for name in ("plain.joblib", "zlib.joblib", "model.pkl.gz")
    }


def test_a_joblib_dtype_that_lies_about_its_item_size_is_not_read_past(tmp_path: Path) -> None:
    joblib.dump({"weights": np.arange(4.0), "later": _Payload()}, tmp_path / "model.joblib")
    data = (tmp_path / "model.joblib").read_bytes()
    honest = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00"  # the dtype state's elsize -1
    assert data.count(honest) == 1
    (tmp_path / "model.joblib").write_bytes(
        data.replace(honest, b"J\x04\x00\x00\x00J\xff\xff\xff\xffK\x00")
    )

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert [(f.rule, f.severity) for f in result.findings] == [("unscannable-model", "high")]
    assert "says 4 bytes, not 8" in result.findings[0].message


def test_every_registered_model_engine_works_on_bare_targets(tmp_path: Path) -> None:
    # What stages that load a model call before loading it: every scanner of model files.
    (tmp_path / "model.pkl").write_bytes(PAYLOADS["marshal-function"])
    engines = [s for s in SCANNERS.values() if "model" in s.sources]
    assert {s.name for s in engines} == {"picklescan", "fickling"}

    targets = ScanTargets(workdir=tmp_path, models=(tmp_path / "model.pkl",))
    found = {s.name: s.scan(targets).findings for s in engines}

    assert any(f.severity == "critical" for f in found["fickling"])


def test_leaving_a_model_engine_out_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))

    evidence = _scan(tmp_path, ["model.pkl"], scanners=["picklescan"])

    assert evidence.status == "error"
    assert evidence.reason == (
        "models are scanned by every model engine; scanners: leaves out fickling"
    )


def test_a_missing_engine_is_an_error_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    monkeypatch.setitem(sys.modules, "fickling", None)  # import fickling fails: not installed
    monkeypatch.setitem(sys.modules, "fickling.fickle", None)

    evidence = _scan(tmp_path, ["model.pkl"])

    assert evidence.status == "error"
    assert evidence.reason == "fickling: not installed (pip install 'mlgate[scan]')"
    assert not _passes(evidence)


def test_a_global_computed_at_load_time_is_critical(tmp_path: Path) -> None:
    # STACK_GLOBAL whose module name is the result of a call: no scanner can name it.
    computed = _call("builtins", "str", _text("posix")) + _text("system") + b"\x93"
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04" + computed + _text("id") + b"\x85R.")

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert {(f.rule, f.severity) for f in result.findings} == {
        ("unresolvable-pickle-global", "critical")
    }


def test_data_that_only_starts_like_a_container_is_not_a_finding(tmp_path: Path) -> None:
    # Raw weights start with any bytes: a zlib or gzip header, or pickle's PROTO opcode.
    lookalikes = {
        "zlib.bin": b"\x78\x9c" + bytes(range(256)) * 4,
        "gzip.bin": b"\x1f\x8b" + bytes(range(256)) * 4,
    }
    for name, data in lookalikes.items():
        (tmp_path / name).write_bytes(data)
    state_dict = _torch_state_dict(tmp_path / "state_dict.pt")
    with zipfile.ZipFile(state_dict, "a") as archive:
        archive.writestr("archive/data/2", b"\x80\x02" + bytes(range(256)))
        archive.writestr("archive/data/3", b"\x78\x9c" + bytes(range(256)))

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert result.findings == []
    assert result.data["files"] == {"state_dict.pt": ["archive/data.pkl"]}


def test_a_pickle_member_that_cannot_be_read_is_high(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "model.pt", "w") as archive:
        archive.writestr("archive/data.pkl", PAYLOADS["os-system"][:-8])  # cut short

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert [(f.rule, f.severity, f.path) for f in result.findings] == [
        ("unscannable-model", "high", "model.pt")
    ]


def test_bytes_joblib_skips_as_array_data_are_scanned_as_pickle_load_reads_them(
    tmp_path: Path,
) -> None:
    # An array wrapper whose "data" is, for pickle.load, a call to os.system: joblib.load reads
    # those bytes as the array, pickle.load runs them.
    hidden = b"0" + _call("posix", "system", _text("id"))
    state = b"}(" + _text("shape") + b"K" + bytes([len(hidden)]) + b"\x85"
    state += _text("dtype") + _call("numpy", "dtype", _text("u1"), b"\x89\x88") + b"u"
    wrapper = _global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    (tmp_path / "model.pkl").write_bytes(_pickled(wrapper + hidden))
    pickletools.dis(_pickled(wrapper + hidden), out=io.StringIO())  # all opcodes to pickle.load

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert {(f.id, f.severity) for f in result.findings} == {(f"fickling:{SYSTEM}", "critical")}
    assert result.data["files"]["model.pkl"] == ["(whole file)", "(as pickle.load reads it)"]


def test_malformed_pickles_are_unscannable_never_a_crash(tmp_path: Path) -> None:
    broken = {
        "unknown-memo.pkl": b"\x80\x02h\x07.",  # BINGET of a memo slot never set
        "empty-stack.pkl": b"\x80\x04\x93.",  # STACK_GLOBAL with nothing to pop
        "no-stop.pkl": b"\x80\x02}q\x00",
        "no-mark.pkl": b"\x80\x02K\x01t.",
    }
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert sorted((f.path, f.rule, f.severity) for f in result.findings) == sorted(
        (name, "unscannable-model", "high") for name in broken
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_model_files_never_crash_the_engine(tmp_path: Path, data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(sorted(_MUTABLE)))
    content = bytearray(_MUTABLE[original])
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(content) - 1))
        content[index] = data.draw(st.integers(0, 255))
    content = content[: data.draw(st.integers(1, len(content)))]
    (tmp_path / "model.bin").write_bytes(bytes(content))

    result = SCANNERS["fickling"].scan(
        ScanTargets(workdir=tmp_path, models=(tmp_path / "model.bin",))
    )

    assert all(f.severity in ("critical", "high") for f in result.findings)


def _joblib_bytes(**options: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"weights": np.arange(6.0).reshape(2, 3), "names": ["a", "b"]}, buffer, **options)
    return buffer.getvalue()


_MUTABLE = {
    "joblib": _joblib_bytes(),
    "joblib-zlib": _joblib_bytes(compress=3),
    "pickle": pickle.dumps({"weights": np.arange(6.0), "bias": 0.5}),
    "payload": PAYLOADS["getattr-chain"],
}


def test_the_engine_works_without_a_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    (tmp_path / "model.pkl").write_bytes(PAYLOADS["nested-loads"])
    joblib.dump({"weights": np.arange(3.0)}, tmp_path / "benign.joblib")

    result = SCANNERS["fickling"].scan(ScanTargets(workdir=tmp_path, models=(tmp_path,)))

    assert {(f.path, f.severity) for f in result.findings} == {("model.pkl", "critical")}
