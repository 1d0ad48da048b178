"""What model libraries really pickle: the globals a benign scikit-learn, XGBoost, LightGBM,
PyTorch (state dict) or NumPy pickle imports. A pickle importing anything else is not a model
file to load unreviewed.

Two kinds of entries:
- exact names, for the libraries whose namespaces also hold loaders and file functions
  (NumPy, PyTorch, the standard library, joblib, XGBoost, LightGBM);
- scikit-learn classes: its estimators are hundreds of classes in private modules, all built by
  `__new__` and `__setstate__`, so a scikit-learn name passes when it is a class by naming
  convention (CamelCase) outside the modules that download, test or re-export (datasets,
  externals, tests, utils._testing), is not a standard-library class scikit-learn imports
  (Thread, NamedTemporaryFile...), or is one of the Cython pickling helpers (newObj,
  __pyx_unpickle_<Class>).
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["allowed", "dangerous", "not-allowed"]

_TORCH_STORAGES = {
    f"{kind}Storage"
    for kind in [
        "Byte",
        "Char",
        "Short",
        "Int",
        "Long",
        "Half",
        "Float",
        "Double",
        "BFloat16",
        "Bool",
        "ComplexFloat",
        "ComplexDouble",
        "QUInt8",
        "QInt8",
        "QInt32",
        "QUInt4x2",
        "QUInt2x4",
        "Untyped",
    ]
}
_NUMPY_UFUNCS = set(
    [
        "log",
        "log1p",
        "log2",
        "log10",
        "exp",
        "expm1",
        "exp2",
        "sqrt",
        "cbrt",
        "square",
        "abs",
        "absolute",
        "sign",
        "negative",
        "reciprocal",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "floor",
        "ceil",
        "rint",
        "trunc",
    ]
)
_NUMPY_TYPES = set(
    [
        "dtype",
        "ndarray",
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "longdouble",
        "complex64",
        "complex128",
        "str_",
        "bytes_",
        "object_",
        "void",
        "datetime64",
        "timedelta64",
    ]
)
_RANDOM = {"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64", "SeedSequence"}
_BUILTINS = set(
    [
        "object",
        "bytearray",
        "bytes",
        "str",
        "int",
        "float",
        "complex",
        "bool",
        "list",
        "dict",
        "tuple",
        "set",
        "frozenset",
        "slice",
        "range",
    ]
)
EXACT: dict[str, set[str]] = {
    "builtins": _BUILTINS,
    "__builtin__": _BUILTINS,
    "copyreg": {"_reconstructor"},
    "copy_reg": {"_reconstructor"},
    "_codecs": {"encode"},  # how protocol 2 pickles bytes under Python 3
    "collections": {"OrderedDict", "defaultdict", "Counter", "deque"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "numpy": _NUMPY_TYPES | _NUMPY_UFUNCS,
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    # How NumPy pickles an array with protocol 5 (cloudpickle, MLflow's older sklearn format).
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.random._pickle": {"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor"},
    "numpy.random.bit_generator": {"SeedSequence", "__pyx_unpickle_SeedSequence"},
    "numpy.random._mt19937": {"MT19937"},
    "numpy.random._pcg64": {"PCG64", "PCG64DXSM"},
    "numpy.random._philox": {"Philox"},
    "numpy.random._sfc64": {"SFC64"},
    "numpy.random.mtrand": {"RandomState"},
    "numpy.random._generator": {"Generator"},
    "scipy.sparse._csr": {"csr_matrix", "csr_array"},
    "scipy.sparse._csc": {"csc_matrix", "csc_array"},
    "scipy.sparse._coo": {"coo_matrix", "coo_array"},
    "scipy.sparse.csr": {"csr_matrix"},
    "scipy.sparse.csc": {"csc_matrix"},
    "joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "torch": _TORCH_STORAGES | {"Size", "device", "float16", "bfloat16", "float32", "float64"},
    "torch._utils": {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"},
    "torch._tensor": {"_rebuild_from_type_v2"},
    "xgboost.core": {"Booster"},
    "xgboost.sklearn": {
        "XGBModel",
        "XGBClassifier",
        "XGBRegressor",
        "XGBRanker",
        "XGBRFClassifier",
        "XGBRFRegressor",
    },
    "lightgbm.basic": {"Booster"},
    "lightgbm.sklearn": {"LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"},
}
_CLASS_NAME = re.compile(r"_*[A-Z][A-Za-z0-9_]*")
_CYTHON_HELPER = re.compile(r"newObj|__pyx_unpickle_[A-Za-z_][A-Za-z0-9_]*")
_SKLEARN_EXCLUDED = re.compile(
    r"sklearn\.(datasets|externals|_build_utils|__check_build|conftest|utils\._testing"
    r"|utils\._show_versions)(\..*)?$|.*\.tests?(\..*)?$"
)
# Standard-library classes scikit-learn modules import (and so re-export under their names).
_REEXPORTED = {
    "Thread",
    "NamedTemporaryFile",
    "TemporaryDirectory",
    "ThreadPoolExecutor",
    "ProcessPoolExecutor",
    "Request",
    "Memory",
    "Parallel",
    "NumpyPickler",
    "NumpyUnpickler",
    "Popen",
    "PathLike",
    "Path",
    "StringIO",
    "BytesIO",
    "HTTPError",
    "URLError",
}
# Modules whose use in a pickle is evidence of a payload, not an oversight: code execution,
# processes, files, the network, nested unpickling, attribute access by name.
_DANGEROUS_MODULES = set(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "pty",
        "shutil",
        "socket",
        "socketserver",
        "ssl",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "requests",
        "webbrowser",
        "pickle",
        "_pickle",
        "cPickle",
        "dill",
        "cloudpickle",
        "joblib",
        "shelve",
        "marshal",
        "types",
        "code",
        "codeop",
        "runpy",
        "importlib",
        "pkgutil",
        "imp",
        "ctypes",
        "_ctypes",
        "multiprocessing",
        "threading",
        "_thread",
        "asyncio",
        "signal",
        "sys",
        "gc",
        "inspect",
        "operator",
        "_operator",
        "functools",
        "pdb",
        "bdb",
        "timeit",
        "tempfile",
        "io",
        "_io",
        "zipimport",
        "site",
        "sysconfig",
    ]
)
_DANGEROUS_BUILTINS = set(
    [
        "eval",
        "exec",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "help",
        "memoryview",
        "type",
        "super",
    ]
)


def judge(module: str, name: str) -> Verdict:
    """Whether a global a pickle imports is what models import, a payload, or neither."""
    if name in EXACT.get(module, set()):
        return "allowed"
    if _is_sklearn_class(module, name):
        return "allowed"
    top = module.split(".")[0]
    if module in ("builtins", "__builtin__", "__builtins__"):
        return "dangerous" if name in _DANGEROUS_BUILTINS else "not-allowed"
    if top in _DANGEROUS_MODULES or module in _DANGEROUS_MODULES:
        return "dangerous"
    if name.split(".")[0] in _DANGEROUS_BUILTINS or "__" in name.strip("_"):
        return "dangerous"  # an attribute path or a dunder reached through a global
    return "not-allowed"


def _is_sklearn_class(module: str, name: str) -> bool:
    if not module.startswith("sklearn.") or _SKLEARN_EXCLUDED.match(module):
        return False
    if _CYTHON_HELPER.fullmatch(name):
        return True
    return bool(_CLASS_NAME.fullmatch(name)) and name not in _REEXPORTED
