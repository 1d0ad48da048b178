"""What model files may import: an allow list of the globals model libraries really pickle.

A pickle can only call what it imports, so an import outside this list is a `high` finding
whatever it is: a deny list of known-bad callables (picklescan's) misses every loader, code
helper and re-export nobody listed. The list is kept narrow on purpose, entry by entry:

- a name must be one identifier: pickle resolves dotted names attribute by attribute from the
  module, so `sklearn.base` + `np.load` would reach numpy.load through an allowed module;
- library-wide rules (scikit-learn) admit class names only: modules re-export functions from
  everywhere (sklearn.utils once re-exported joblib.load), while classes are what estimators
  are made of; subpackages that hold test helpers, downloaders, vendored code or
  process/network plumbing are left out entirely (see _SKLEARN_EXCLUDED);
- every other library is listed name by name.

The same list judges the types a skops file names.
"""

from __future__ import annotations

import re
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

# Python's own types that hold data. Not `type`, `getattr`, `eval`, `exec`, `compile`, `open`,
# `__import__`, `vars`, `globals`, `breakpoint`, `memoryview`... none is data.
_BUILTINS = (
    "object bool int float complex str bytes bytearray tuple list dict set frozenset slice range"
)

# The stack that builds scikit-learn, NumPy and SciPy objects.
_EXACT: frozenset[str] = frozenset(
    [f"builtins.{name}" for name in _BUILTINS.split()]
    + [
        # Protocols 0-1 build objects with _reconstructor (cls.__new__ + __init__ of a base
        # that is itself an allowed global); __newobj__(_ex) is cls.__new__ for protocol 2+.
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        # Protocol 2 writes bytes as _codecs.encode(text, "latin1"): a codec, no code.
        "_codecs.encode",
        "collections.OrderedDict",
        "collections.defaultdict",  # its factory is a global of its own, judged on its own
        "collections.deque",
        "collections.Counter",
        # NumPy: array and scalar reconstruction, dtypes, masked arrays, random generator state.
        # Not numpy.load / numpy.testing / numpy.f2py / numpy.distutils or any other function:
        # those read files, unpickle or run code.
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.matrix",
        "numpy.ma.MaskedArray",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core._mareconstruct",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._mt19937.MT19937",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        # joblib's array wrapper: the array bytes follow it in the file. Not the pre-0.10
        # NDArrayWrapper, which loads a separate file named in the pickle.
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
        # PyTorch state dicts (torch.save's data.pkl): tensor and parameter rebuilders, the
        # storage types named in persistent ids, sizes, devices and layouts. This mirrors the
        # globals torch.load(weights_only=True) accepts; no module of torch beyond them.
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_nested_tensor",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.Size",
        "torch.device",
        "torch.serialization._get_layout",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        # XGBoost and LightGBM through their scikit-learn API: the estimator and its Booster,
        # whose state is the library's own model format, parsed by its C library.
        "xgboost.core.Booster",
        "lightgbm.basic.Booster",
    ]
    + [
        f"xgboost.sklearn.{name}"
        for name in [
            "XGBModel",
            "XGBClassifier",
            "XGBRegressor",
            "XGBRanker",
            "XGBRFClassifier",
            "XGBRFRegressor",
        ]
    ]
    + [
        f"lightgbm.sklearn.{name}"
        for name in ["LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"]
    ]
    + [
        f"torch.{kind}Storage"
        for kind in [
            "Float",
            "Double",
            "Half",
            "BFloat16",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
            "ComplexFloat",
            "ComplexDouble",
            "QUInt8",
            "QInt8",
            "QInt32",
            "QUInt4x2",
            "QUInt2x4",
        ]
    ]
    + [
        f"torch.{dtype}"
        for dtype in [
            "float16",
            "float32",
            "float64",
            "bfloat16",
            "half",
            "float",
            "double",
            "complex64",
            "complex128",
            "cfloat",
            "cdouble",
            "uint8",
            "int8",
            "int16",
            "int32",
            "int64",
            "short",
            "int",
            "long",
            "bool",
            "qint8",
            "quint8",
            "qint32",
        ]
    ]
    + [
        # numpy's reconstructors moved from numpy.core to numpy._core in NumPy 2.
        f"numpy.{core}.{name}"
        for core in ("core", "_core")
        for name in ("multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer")
    ]
)

# NumPy scalar types (an estimator's `dtype=np.float32` parameter pickles the type itself) and
# NumPy 2's dtype classes.
_NUMPY_TYPE = re.compile(
    r"numpy\.(bool_?|u?int(8|16|32|64|c|p)?|u?byte|u?short|u?longlong|u?intc|half|single|"
    r"double|longdouble|float(16|32|64|96|128)|c?longdouble|complex(64|128|192|256)|csingle|"
    r"cdouble|clongdouble|object_|str_|bytes_|void|datetime64|timedelta64)"
    r"|numpy\.dtypes\.[A-Z][A-Za-z0-9]*DType"
)
# SciPy sparse matrices and arrays, in any of scipy.sparse's (private) modules.
_SCIPY_SPARSE = re.compile(
    r"scipy\.sparse(\.[a-z_][a-z0-9_]*)?\.(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)"
)
# scikit-learn: classes (CamelCase, also private _Scorer-style ones) and Cython's unpickle
# helpers, in any module but these subpackages: test helpers that run scripts
# (utils._testing), dataset downloaders and file readers (datasets), vendored code that
# re-exports types.FunctionType (externals), multiprocessing connections and threads
# (callback, utils.parallel), build and discovery helpers.
_SKLEARN_EXCLUDED = frozenset(
    [
        "tests",
        "_testing",
        "_test_common",
        "estimator_checks",
        "datasets",
        "externals",
        "_build_utils",
        "__check_build",
        "conftest",
        "experimental",
        "callback",
        "parallel",
        "discovery",
        "fixes",
        "_show_versions",
        "_available_if",
        "_repr_html",
        "_min_dependencies",
        "_joblib",
    ]
)
_SKLEARN_CLASS = re.compile(
    # newObj(cls) is cls.__new__(cls): how its Cython trees and distance metrics pickle.
    r"_?[A-Z][A-Za-z0-9_]*|__pyx_unpickle_[A-Za-z0-9_]+|newObj"
)
# Class names scikit-learn's remaining modules import from elsewhere that build new types or
# reach threads, processes, sockets and files (found by listing every CamelCase attribute of
# every sklearn module that is not sklearn's own): an allowed module must not lend them.
_SKLEARN_BORROWED = frozenset(
    [
        "ABCMeta",
        "Enum",
        "MethodType",
        "Path",
        "Thread",
        "Queue",
        "Client",
        "Listener",
        "Connection",
        "Popen",
        "ThreadpoolController",
    ]
)
# Metric functions that scorers hold (GridSearchCV(scoring="accuracy") pickles
# accuracy_score); these modules import nothing but NumPy/SciPy math besides.
_SKLEARN_METRIC_MODULES = frozenset(
    (
        "sklearn.metrics._classification",
        "sklearn.metrics._regression",
        "sklearn.metrics._ranking",
        "sklearn.metrics.cluster._supervised",
        "sklearn.metrics.cluster._unsupervised",
    )
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def as_loaded(module: str, name: str) -> tuple[str, str]:
    """The global Python 3's unpickler imports for a (module, name) written by Python 2 (it
    maps them for protocols 0-2): `__builtin__.set` is `builtins.set`."""
    if (module, name) in NAME_MAPPING:
        mapped: tuple[str, str] = NAME_MAPPING[(module, name)]
        return mapped
    return IMPORT_MAPPING.get(module, module), name


def allowed(module: str, name: str) -> bool:
    """Whether a model may import `module.name` when it is loaded."""
    module, name = as_loaded(module, name)
    if not (_MODULE.fullmatch(module) and _IDENTIFIER.fullmatch(name)):
        return False  # dotted names walk attributes: any module reaches anything
    dotted = f"{module}.{name}"
    if dotted in _EXACT or _NUMPY_TYPE.fullmatch(dotted) or _SCIPY_SPARSE.fullmatch(dotted):
        return True
    parts = module.split(".")
    if parts[0] != "sklearn" or _SKLEARN_EXCLUDED.intersection(parts[1:]):
        return False
    if name in _SKLEARN_BORROWED:
        return False
    return bool(_SKLEARN_CLASS.fullmatch(name)) or (
        module in _SKLEARN_METRIC_MODULES and not name.startswith("_")
    )


def size() -> dict[str, int]:
    """How big the list is: exact entries and pattern rules (for the evidence and docs)."""
    return {"exact": len(_EXACT), "patterns": 4}
