"""The model scanner's allow list on crafted payloads and on real models.

Every malicious file here is written opcode by opcode (or pickled from an object whose
__reduce__ only returns the call) and is never loaded. Each payload is one a deny list missed:
loaders that unpickle nested bytes, code helpers nobody listed, marshal + function constructors,
imports reached through vars/dict.get, STACK_GLOBAL operands from the memo, and a joblib array
whose dtype lies about its item size. Benign models of scikit-learn (pickle, joblib, compressed
joblib, skops, an MLflow model directory), LightGBM, XGBoost and PyTorch state dicts must pass.
"""

from __future__ import annotations

import marshal
import pickle
import struct
from pathlib import Path

import pytest

from mlgate.evidence import Finding
from mlgate.scanners.interface import ScanTargets, at_least
from mlgate.scanners.model_files import ModelFileScanner

MODELS = Path(__file__).parent / "data" / "models"

# --- pickle opcodes, written by hand -------------------------------------------------------

PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, TUPLE, TUPLE1, TUPLE2 = b"(", b"t", b"\x85", b"\x86"
EMPTY_TUPLE, EMPTY_DICT = b")", b"}"
REDUCE, STACK_GLOBAL, MEMOIZE, DUP, POP, STOP = b"R", b"\x93", b"\x94", b"2", b"0", b"."


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    encoded = value.encode()
    return b"X" + struct.pack("<I", len(encoded)) + encoded


def short_text(value: str) -> bytes:  # SHORT_BINUNICODE, protocol 4
    return b"\x8c" + bytes([len(value)]) + value.encode()


def data(value: bytes) -> bytes:  # BINBYTES
    return b"B" + struct.pack("<I", len(value)) + value


def binget(index: int) -> bytes:
    return b"h" + bytes([index])


def call(function: bytes, *arguments: bytes) -> bytes:
    """function(*arguments) as opcodes; the result stays on the stack."""
    return function + MARK + b"".join(arguments) + TUPLE + REDUCE


SHELL = text("echo pwned")


def _scan(workdir: Path, *paths: Path) -> list[Finding]:
    return ModelFileScanner().scan(ScanTargets(workdir=workdir, models=paths)).findings


def _blocking(findings: list[Finding]) -> set[tuple[str, str]]:
    """What fails the default policy (fail_on.model: high)."""
    return {(f.severity, f.rule) for f in findings if at_least(f.severity, "high")}


# --- payloads a deny list misses -----------------------------------------------------------

_NESTED = pickle.dumps(print)  # any pickle: the point is the loader that reads it
_PAYLOADS = {
    # Loaders that unpickle bytes or files the outer pickle hands them.
    "joblib.load": call(global_("joblib", "load"), call(global_("io", "BytesIO"), data(_NESTED))),
    "dill.loads": call(global_("dill", "loads"), data(_NESTED)),
    "cloudpickle.loads": call(global_("cloudpickle", "loads"), data(_NESTED)),
    "pandas.read_pickle": call(global_("pandas", "read_pickle"), text("/tmp/x.pkl")),
    "torch.load": call(global_("torch", "load"), text("/tmp/x.pt")),
    "numpy.load": call(global_("numpy", "load"), text("/tmp/x.npy")),
    # Code helpers outside picklescan's list.
    "sklearn test helper": call(
        global_("sklearn.utils._testing", "assert_run_python_script_without_output"),
        text("import os; os.system('echo pwned')"),
    ),
    "__import__": call(global_("builtins", "__import__"), text("os")),
    "importlib": call(global_("importlib", "import_module"), text("os")),
    "fork_exec": call(global_("_posixsubprocess", "fork_exec"), SHELL),
    # marshal + a function constructor: arbitrary bytecode, then called.
    "marshal+FunctionType": call(
        call(
            global_("types", "FunctionType"),
            call(
                global_("marshal", "loads"),
                data(marshal.dumps(compile("print('pwned')", "x", "exec"))),
            ),
            EMPTY_DICT,
        )
    ),
    # os.system through vars() and dict.get, from a module that imports os (shlex).
    "vars+dict.get": PROTO4
    + call(
        call(
            short_text("builtins") + short_text("dict.get") + STACK_GLOBAL,
            call(global_("builtins", "vars"), global_("shlex", "os")),
            text("system"),
        ),
        SHELL,
    ),
}


@pytest.mark.parametrize("name", sorted(_PAYLOADS))
def test_payloads_a_deny_list_misses_are_at_least_high(tmp_path: Path, name: str) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(PROTO2 + _PAYLOADS[name].removeprefix(PROTO4) + STOP)

    blocking = _blocking(_scan(tmp_path, path))

    assert blocking, f"{name} passes the default policy"
    assert blocking <= {
        ("high", "model-import-not-allowed"),
        ("critical", "unsafe-pickle-import"),
    }


def test_stack_global_operands_from_the_memo_resolve(tmp_path: Path) -> None:
    # picklescan reads STACK_GLOBAL's operands from the opcodes just before it, so operands
    # stored in the memo (MEMOIZE, later BINGET) or moved with DUP show as `None.None`.
    memo = (
        PROTO4
        + short_text("posix")
        + MEMOIZE
        + POP
        + short_text("system")
        + MEMOIZE
        + POP
        + binget(0)
        + binget(1)
        + STACK_GLOBAL
    )
    dup = PROTO4 + short_text("posix") + short_text("system") + DUP + POP + STACK_GLOBAL
    for name, opcodes in (("memo.pkl", memo), ("dup.pkl", dup)):
        (tmp_path / name).write_bytes(opcodes + SHELL + TUPLE1 + REDUCE + STOP)

    findings = _scan(tmp_path, tmp_path / "memo.pkl", tmp_path / "dup.pkl")

    assert {(f.path, f.id, f.severity) for f in findings if f.severity == "critical"} >= {
        ("memo.pkl", "pickle:posix.system", "critical"),
        ("dup.pkl", "pickle:posix.system", "critical"),
    }


def test_a_global_named_at_load_time_is_critical(tmp_path: Path) -> None:
    # str("posix") is computed by an allowed call; STACK_GLOBAL then imports posix.system.
    opcodes = (
        PROTO4
        + call(global_("builtins", "str"), text("posix"))
        + short_text("system")
        + STACK_GLOBAL
        + SHELL
        + TUPLE1
        + REDUCE
        + STOP
    )
    (tmp_path / "computed.pkl").write_bytes(opcodes)

    findings = _scan(tmp_path, tmp_path / "computed.pkl")

    [unresolved] = [f for f in findings if f.rule == "unresolved-pickle-import"]
    assert (unresolved.severity, unresolved.id) == ("critical", "pickle:unresolved-import")
    assert "STACK_GLOBAL at byte" in unresolved.message


def test_the_allow_list_is_narrow() -> None:
    from mlgate.scanners.pickle_allowlist import allowed  # new in the allow-list scanner

    admitted = [
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.metrics._scorer", "_PassthroughScorer"),
        ("sklearn.metrics._classification", "accuracy_score"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "float32"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("__builtin__", "set"),  # Python 2's name, mapped as the unpickler maps it
        ("copy_reg", "_reconstructor"),
    ]
    refused = [
        ("numpy", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy.lib.format", "read_array"),
        ("numpy", "log1p"),
        ("sklearn.base", "np.load"),  # dotted: walks attributes from an allowed module
        ("sklearn.base", "BaseEstimator.__reduce__"),
        ("sklearn.utils", "check_array"),  # a function, not a class
        ("sklearn.utils._testing", "TempMemmap"),
        ("sklearn.externals.array_api_extra.testing._testing", "FunctionType"),
        ("sklearn.callback._transport", "Client"),
        ("sklearn.base", "ABCMeta"),  # builds classes, like builtins.type
        ("sklearn.utils._available_if", "MethodType"),
        ("sklearn.datasets._openml", "Request"),
        ("sklearn.metrics._scorer", "signature"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("builtins", "getattr"),
        ("builtins", "type"),
        ("collections", "namedtuple"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("xgboost", "DMatrix"),
    ]
    assert [entry for entry in admitted if not allowed(*entry)] == []
    assert [entry for entry in refused if allowed(*entry)] == []


# --- a joblib file whose dtype lies about its item size ------------------------------------

_WRAPPER = (
    b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\nq\x00)\x81q\x01}q\x02("
    + text("subclass")
    + global_("numpy", "ndarray")
    + text("shape")
    + b"K\x10\x85"  # (16,)
    + text("order")
    + text("C")
    + text("dtype")
    + global_("numpy", "dtype")
    + text("f8")
    + b"\x89\x88\x87R"  # dtype("f8", False, True)
)


def _lying_joblib(elsize: int, flags: int, payload: bytes) -> bytes:
    """An array of 16 float64 (128 bytes) whose dtype state says item size `elsize`. A reader
    that trusts the state reads 16 * elsize bytes of array and then, at byte 16 of the data, a
    STOP and a BINBYTES that swallows the payload; joblib.load reads 128 bytes and runs the
    payload that follows them (checked with a harmless call: joblib.load reaches it)."""
    state = MARK + b"K\x03" + text("<") + b"NNN" + b"J" + struct.pack("<i", elsize)
    state += b"J\xff\xff\xff\xffK" + bytes([flags]) + TUPLE + b"b"
    attributes = text("allow_mmap") + b"\x88" + text("numpy_array_alignment_bytes") + b"K\x10"
    after = payload + POP + STOP  # joblib: run the payload, drop its result, return the array
    decoy = bytes(16) + STOP + b"B" + struct.pack("<I", 128 - 22 + len(after) - 1)
    return (
        _WRAPPER + state + attributes + b"ub" + b"\x05" + b"\xff" * 5  # alignment padding
        + decoy + bytes(128 - len(decoy)) + after
    )  # fmt: skip


def test_joblib_array_whose_dtype_lies_is_malformed_and_read_past(tmp_path: Path) -> None:
    system = call(global_("posix", "system"), SHELL)
    (tmp_path / "lying.joblib").write_bytes(_lying_joblib(1, 0, system))
    (tmp_path / "objects.joblib").write_bytes(_lying_joblib(-1, 1, system))  # "holds objects"

    findings = _scan(tmp_path, tmp_path / "lying.joblib", tmp_path / "objects.joblib")

    lying = {(f.severity, f.id) for f in findings if f.path == "lying.joblib"}
    assert {("critical", "malformed-model"), ("critical", "pickle:posix.system")} <= lying
    [malformed] = [f for f in findings if f.id == "malformed-model" and f.path == "lying.joblib"]
    assert "dtype f8 states item size 1, its type has 8" in malformed.message
    objects = [f for f in findings if f.path == "objects.joblib" and f.id == "malformed-model"]
    assert objects and "Python objects" in objects[0].message


def test_joblib_item_size_is_numpys_not_the_state(tmp_path: Path) -> None:
    # The same file with an honest state: read like joblib, the payload is found, and the
    # file is not malformed.
    system = call(global_("posix", "system"), SHELL)
    (tmp_path / "honest.joblib").write_bytes(_lying_joblib(-1, 0, system))

    findings = _scan(tmp_path, tmp_path / "honest.joblib")

    assert _blocking(findings) == {("critical", "unsafe-pickle-import")}


def test_the_docs_state_the_allow_lists_size() -> None:
    from mlgate.scanners.pickle_allowlist import size

    page = (Path(__file__).parents[1] / "docs" / "scanning.md").read_text()
    counts = size()
    assert f"{counts['exact']} exact names" in page
    assert f"and {counts['patterns']} patterns" in page
