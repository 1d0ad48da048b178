"""NumPy dtypes read from pickles and .npy headers, without NumPy.

joblib reads `count * dtype.itemsize` raw bytes after each array wrapper, or a nested pickle when
`dtype.hasobject`; a reader that computes either differently from NumPy reads different bytes
and misses what joblib.load runs. NumPy's `dtype.__setstate__` takes the item size from the
pickled state for flexible types (S, U, V) and ignores it for the others, and takes `hasobject`
from the state's flags whatever the type. We compute both exactly that way, so our reading stays
in step with joblib's, and also from the type itself: a state that disagrees with its own type is
never written by NumPy, only by hand, and is reported.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from dataclasses import dataclass, field
from typing import IO

from mlgate.scanners.pickle_machine import Built, Global, Malformed, Pairs

_DTYPE = Global("numpy", "dtype")
_FIXED_KINDS = "biufcMmO"  # item size given by the type code ('f8', 'M8', 'O8')
_FLEXIBLE_KINDS = "SUV"  # item size given by the state ('U2' is 8 bytes)
_HASOBJECT_FLAG = 0x01  # NPY_ITEM_HASOBJECT (also NPY_ITEM_REFCOUNT)


@dataclass
class Layout:
    """A dtype as NumPy builds it from its pickle, and what was wrong with the pickle."""

    itemsize: int
    hasobject: bool
    lies: list[str] = field(default_factory=list)  # state that disagrees with the type


def pickled_layout(dtype: object) -> Layout:
    """Item size and hasobject of a pickled `numpy.dtype(code, False, True)` + BUILD(state)."""
    if not (
        isinstance(dtype, Built)
        and dtype.factory == _DTYPE
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
        and isinstance(dtype.state, tuple)
        and len(dtype.state) >= 8
    ):
        raise Malformed("a joblib array whose dtype is not a plain numpy dtype")
    code: str = dtype.args[0]
    state: tuple[object, ...] = dtype.state
    match = re.fullmatch(r"([a-zA-Z?])(\d*)", code)
    if match is None or match.group(1).replace("?", "b") not in _FIXED_KINDS + _FLEXIBLE_KINDS:
        raise Malformed(f"numpy dtype {code!r} is not one numpy reads")
    kind, digits = match.group(1).replace("?", "b"), match.group(2)
    subarray, fields, elsize, flags = state[2], state[4], state[5], state[7]
    if (
        not isinstance(elsize, int)
        or not isinstance(flags, int)
        or bool
        in (
            type(elsize),
            type(flags),
        )
    ):
        raise Malformed(f"numpy dtype {code!r} with a state NumPy cannot read")
    lies: list[str] = []
    by_type = _size_by_type(kind, digits)
    if kind in _FIXED_KINDS:
        itemsize = by_type
        if elsize not in (-1, by_type):
            lies.append(f"dtype {code} states item size {elsize}, its type has {by_type}")
    else:
        itemsize = elsize
        if elsize != by_type:
            lies.append(f"dtype {code} states item size {elsize}, its type has {by_type}")
    contains_objects = kind == "O"
    if subarray is not None:
        contains_objects |= _subarray(subarray, elsize, code, lies)
    if fields is not None:
        contains_objects |= _fields(fields, elsize, code, lies)
    hasobject = bool(flags & _HASOBJECT_FLAG)
    if hasobject != contains_objects:
        lies.append(
            f"dtype {code} states it {'holds' if hasobject else 'holds no'} Python objects, "
            f"its type {'holds' if contains_objects else 'holds none'}"
        )
    return Layout(itemsize, hasobject, lies)


def _size_by_type(kind: str, digits: str) -> int:
    if kind in "Mm" and not digits:
        return 8
    if not digits:
        raise Malformed(f"numpy dtype {kind!r} without an item size")
    return int(digits) * (4 if kind == "U" else 1)


def _subarray(subarray: object, elsize: int, code: str, lies: list[str]) -> bool:
    if not (isinstance(subarray, tuple) and len(subarray) == 2):
        raise Malformed(f"numpy dtype {code!r} with a malformed subarray")
    base, shape = subarray
    shape = shape if isinstance(shape, tuple) else (shape,)
    if not all(_is_int(n) and n >= 0 for n in shape):
        raise Malformed(f"numpy dtype {code!r} with subarray shape {shape!r}")
    inner = pickled_layout(base)
    lies.extend(inner.lies)
    if inner.itemsize * math.prod(shape) != elsize:
        lies.append(f"dtype {code} states item size {elsize}, its subarray has another")
    return inner.hasobject


def _fields(fields: object, elsize: int, code: str, lies: list[str]) -> bool:
    if not isinstance(fields, Pairs):
        raise Malformed(f"numpy dtype {code!r} with malformed fields")
    holds_objects = False
    for _, described in fields.pairs:
        if not (isinstance(described, tuple) and len(described) >= 2 and _is_int(described[1])):
            raise Malformed(f"numpy dtype {code!r} with a malformed field")
        inner = pickled_layout(described[0])
        lies.extend(inner.lies)
        holds_objects |= inner.hasobject
        if described[1] < 0 or described[1] + inner.itemsize > elsize:
            lies.append(f"dtype {code} has a field beyond its item size {elsize}")
    return holds_objects


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- .npy files -----------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"


def npy_holds_objects(handle: IO[bytes]) -> bool:
    """Read a .npy header (leaving the handle at the data) and say whether the data is a pickle
    (numpy.load unpickles arrays whose dtype holds objects)."""
    if handle.read(6) != NPY_MAGIC:
        raise Malformed("not a .npy file")
    version = handle.read(2)
    if len(version) != 2 or version[0] not in (1, 2, 3):
        raise Malformed(f".npy format version {version!r} is unknown")
    width = "<H" if version[0] == 1 else "<I"
    (length,) = struct.unpack(width, handle.read(struct.calcsize(width)))
    try:
        text = handle.read(length).decode("latin1" if version[0] < 3 else "utf8")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError) as exc:
        raise Malformed(f".npy header is not readable: {exc}") from None
    if not isinstance(header, dict) or "descr" not in header:
        raise Malformed(".npy header without a dtype")
    return _descr_has_objects(header["descr"])


def _descr_has_objects(descr: object) -> bool:
    """Whether a .npy `descr` (a type string or a list of fields) holds Python objects."""
    if isinstance(descr, str):
        return bool(re.fullmatch(r"[<>|=]?O\d*", descr))
    if isinstance(descr, list):  # fields: (name, descr) or (name, descr, shape)
        return any(
            isinstance(part, tuple) and len(part) >= 2 and _descr_has_objects(part[1])
            for part in descr
        )
    return False
