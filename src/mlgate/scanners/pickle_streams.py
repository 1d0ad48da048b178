"""The pickle streams inside model files, found by content (never by name) and read without
unpickling, for engines that analyse one pickle at a time (fickling).

Independent of picklescan's reader in model_files on purpose: a second engine that shared the
first one's parser would share its blind spots. What is read:

- a plain pickle, and every pickle stacked after it;
- joblib: each NumPy array's raw bytes sit inside the pickle stream after a
  NumpyArrayWrapper; they are skipped by the size NumPy computes from the dtype (a state that
  disagrees is refused) and an object array's nested pickle is read as a stream of its own;
- compressed files (gzip, bz2, xz, lzma, zlib: joblib's compressors and `.pkl.gz`), opened;
- zip archives (PyTorch's format): every member that is a pickle;
- `.npy` with an object dtype: the pickle after the header;
- any other file whose opcodes parse from byte 0, whatever that byte, to an import or a STOP
  (a long BINBYTES of padding before the import hides nothing).

A file that announces a pickle but cannot be followed to its end raises Unreadable: an engine
must not pass what it could not read.
"""

from __future__ import annotations

import bz2
import contextvars
import gzip
import io
import lzma
import math
import os
import pickletools
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, cast

from mlgate.scanners.pickle_byte_sources import Capped, Reader, Recorder, ZlibReader
from mlgate.scanners.pickle_stack import Call, Stack

_PROTO = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_NUMPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_WRAPPERS = {("joblib.numpy_pickle", "NumpyArrayWrapper")}
# Whether bytes after a joblib array wrapper are skipped as array data (joblib.load) or read as
# opcodes (pickle.load).
_SKIP_ARRAYS = contextvars.ContextVar("_SKIP_ARRAYS", default=True)
_SNIFF = 8192  # bytes looked at to tell a pickle without magic from other data
# When to stop parsing a file without magic to tell whether it is a pickle (the scan's deadline).
_DEADLINE = contextvars.ContextVar("_DEADLINE", default=math.inf)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# What a protocol 0/1 pickle starts with: MARK, GLOBAL, an empty container, a constant.
_OLD_FIRST_OPCODES = b"(c]})NIFLSVUTJKMGX"


class Unreadable(Exception):
    """The file holds pickle data that cannot be followed to its end; one line, why."""


@dataclass(frozen=True)
class PickleStream:
    where: str  # "" for the file itself, else "member.pkl", "#2" (the second stacked pickle)...
    data: bytes  # the pickle's opcodes, array bytes left out
    skipped_arrays: bool = False  # bytes were skipped as joblib array data


def files_under(target: Path) -> list[Path]:
    """Every regular file of a target (a file or a directory walked in sorted order)."""
    if not target.is_dir():
        return [target]
    found: list[Path] = []
    for base, directories, names in os.walk(target):
        directories.sort()
        found.extend(Path(base) / name for name in sorted(names))
    return [p for p in found if p.is_file() and not p.is_symlink()]


def pickle_streams(path: Path, deadline: float = math.inf) -> list[PickleStream]:
    """The pickles in a file; [] when it holds none. A file without magic is parsed to its end
    to tell whether it is a pickle, until `deadline` (then it is read as one).

    Bytes skipped as joblib array data are what joblib.load reads as data, but pickle.load
    reads them as opcodes: when any were skipped, the file is also read as pickle.load reads
    it, and that reading is scanned too when it parses (a desynchronised payload)."""
    deadline_token = _DEADLINE.set(deadline)
    try:
        with path.open("rb") as handle:
            streams = list(_streams(handle, "", depth=0))
    finally:
        _DEADLINE.reset(deadline_token)
    if not any(stream.skipped_arrays for stream in streams):
        return streams
    token = _SKIP_ARRAYS.set(False)
    try:
        with path.open("rb") as handle:
            plain = list(_streams(handle, "", depth=0))
    except Unreadable:
        plain = []  # array bytes are no opcodes: pickle.load cannot read it either
    finally:
        _SKIP_ARRAYS.reset(token)
    seen = {stream.data for stream in streams}
    return streams + [
        replace(stream, where=f"{stream.where} (as pickle.load reads it)".lstrip())
        for stream in plain
        if stream.data not in seen
    ]


def _streams(reader: Reader, where: str, depth: int) -> Iterator[PickleStream]:
    head = reader.peek(_SNIFF)[:_SNIFF]
    opened = _decompressed(reader, head) if depth < 2 else None
    if opened is not None:
        with opened:
            inner = io.BufferedReader(Capped(opened))
            try:
                inner_head = inner.peek(_SNIFF)[:_SNIFF]
            except (OSError, EOFError, zlib.error, lzma.LZMAError):
                return  # data that only starts like a compressed stream (weights, say)
            if _holds_pickles(inner_head):
                yield from _streams(inner, where, depth + 1)
    elif head.startswith(_ZIP_MAGIC) and reader.seekable():
        yield from _zip_members(reader, where)
    elif head.startswith(_NUMPY_MAGIC):
        yield from _numpy_objects(reader, where)
    elif head[:2] in _PROTO or _protocol_0_or_1(head) or _unmarked_pickle(reader, depth):
        yield from _stacked(reader, where)


def classified(path: Path) -> bool:
    """Whether the file's first bytes name a format this reader knows (a compressed stream, a
    zip, a .npy, an HDF5 file, a pickle protocol header), pickles found in it or not."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return (
        _decompressed(io.BytesIO(head), head) is not None
        or head.startswith((_ZIP_MAGIC, b"PK\x05\x06", _NUMPY_MAGIC, _HDF5_MAGIC))
        or head[:2] in _PROTO
    )


def _unmarked_pickle(reader: Reader, depth: int) -> bool:
    """A file whose first byte is no known header (BINBYTES, protocol 1's \\x80\\x01...)."""
    return depth == 0 and reader.seekable() and _parses_as_pickle(cast("IO[bytes]", reader))


def _parses_as_pickle(handle: IO[bytes]) -> bool:
    """Whether the whole stream parses, from byte 0, to an import of a dotted name or a STOP,
    as pickle.load would run it; the stream is left where it was."""
    start = handle.tell()
    try:
        for count, (opcode, argument, _) in enumerate(pickletools.genops(handle)):
            if count % 4096 == 0 and time.monotonic() > _DEADLINE.get():
                return True  # out of time: read as a pickle, which reports what it cannot read
            if opcode.name in ("GLOBAL", "INST"):
                module, _, name = str(argument).partition(" ")
                return bool(_DOTTED.fullmatch(module) and _DOTTED.fullmatch(name))
            if opcode.name in ("STACK_GLOBAL", "EXT1", "EXT2", "EXT4", "STOP"):
                return True
    except Exception:  # not a pickle: pickle.load too fails before importing anything
        return False
    finally:
        handle.seek(start)
    return False


def _holds_pickles(head: bytes) -> bool:
    """Whether decompressed data is what a loader would unpickle: a pickle or a .npy."""
    return head[:2] in _PROTO or head.startswith(_NUMPY_MAGIC) or _protocol_0_or_1(head)


def _decompressed(handle: Any, head: bytes) -> io.BufferedIOBase | None:
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle)
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return bz2.BZ2File(handle)
    if head.startswith((b"\xfd7zXZ", b"\x5d\x00\x00")):
        return lzma.LZMAFile(handle)
    if head[:1] == b"\x78" and int.from_bytes(head[:2], "big") % 31 == 0:  # zlib's header check
        return io.BufferedReader(ZlibReader(handle))
    return None


def _zip_members(handle: Any, where: str) -> Iterator[PickleStream]:
    """Pickles in a zip: the members loaders unpickle by name (PyTorch's data.pkl, an .npz's
    .npy files) must be read to their end; any other member is scanned when it is a pickle and
    left as data otherwise (tensor bytes may start like anything)."""
    try:
        archive = zipfile.ZipFile(handle)
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise Unreadable(f"a broken zip archive: {exc}") from None
    for member in members:
        inside = f"{where}/{member.filename}" if where else member.filename
        try:
            with archive.open(member) as opened:
                reader = io.BufferedReader(Capped(opened))
                head = reader.peek(_SNIFF)[:_SNIFF]
                if member.filename.endswith((".pkl", ".pickle")):
                    yield from _stacked(reader, inside)
                elif member.filename.endswith(".npy") or head.startswith(_NUMPY_MAGIC):
                    yield from _numpy_objects(reader, inside)
                elif head[:2] in _PROTO:
                    yield from _if_pickle(reader, inside)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise Unreadable(f"zip member {inside}: {exc}") from None


def _if_pickle(reader: Reader, where: str) -> Iterator[PickleStream]:
    try:
        streams = list(_stacked(reader, where))
    except Unreadable:
        return  # data, not a pickle: no loader reads this member as one
    yield from streams


def _numpy_objects(reader: Reader, where: str) -> Iterator[PickleStream]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(reader)
        header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        _, _, dtype = header(reader)
    except (ValueError, OSError) as exc:
        raise Unreadable(f"a broken .npy header: {exc}") from None
    if dtype.hasobject:
        yield from _stacked(reader, where)


def _protocol_0_or_1(head: bytes) -> bool:
    """Protocol 0 and 1 pickles have no magic: the head is one when it parses as one (to its
    STOP, or to where the sniffed bytes end)."""
    if not head or head[0] not in _OLD_FIRST_OPCODES:
        return False
    source = io.BytesIO(head)
    try:
        for opcode, _, _ in pickletools.genops(source):
            if opcode.name == "STOP":
                return True
    except Exception:  # not a pickle, however pickletools objects to it
        return len(head) == _SNIFF and source.tell() > _SNIFF - 512
    return False


def _stacked(reader: Reader, where: str) -> Iterator[PickleStream]:
    """Every pickle in the stream, one after the other, to its last byte."""
    index = 0
    while reader.peek(1)[:1] or index == 0:
        recorder = Recorder(reader)
        nested = _read_one(recorder)
        index += 1
        named = where if index == 1 else f"{where}#{index}"
        yield PickleStream(named, bytes(recorder.kept), recorder.skipped)
        for inner in nested:
            yield PickleStream(f"{where}#{index} (object array)", inner)


def _read_one(recorder: Recorder) -> list[bytes]:
    """Read one pickle, leaving joblib's array bytes out; the nested object-array pickles."""
    machine = Stack()
    nested: list[bytes] = []
    start = len(recorder.kept)
    try:
        for opcode, argument, _ in pickletools.genops(cast("IO[bytes]", recorder)):
            built = machine.step(opcode.name, argument)
            if opcode.name in _REWRITTEN:
                recorder.replace_from(start, _rewritten(opcode.name, argument, recorder.kept))
            if opcode.name == "STOP":
                return nested
            if isinstance(built, Call) and (built.module, built.name) in _WRAPPERS:
                nested.extend(_skip_array(recorder, built))
            start = len(recorder.kept)
    except Unreadable:
        raise
    except Exception as exc:  # a malformed stream breaks the reader in any way: all unreadable
        raise Unreadable(
            f"pickle data that cannot be read to its end: {message_line(exc)}"
        ) from None
    raise Unreadable("pickle data without a STOP opcode")


# Opcodes fickling 0.1.12 cannot parse, as ones that push the same value: protocol 5's
# in-band buffers (NumPy arrays pickled with protocol 5, as cloudpickle does) and protocol 0's
# text floats. Out-of-band buffers are not in the file: an empty one stands in.
_REWRITTEN = ("BYTEARRAY8", "FLOAT", "NEXT_BUFFER", "READONLY_BUFFER")


def _rewritten(name: str, argument: Any, raw: bytearray) -> bytes:
    """The opcode just read (the end of `raw`), as fickling can parse it."""
    if name == "BYTEARRAY8":
        return b"\x8e" + bytes(raw[-len(argument) - 8 :])  # BINBYTES8: same length and bytes
    if name == "FLOAT":
        return b"G" + struct.pack(">d", argument)  # BINFLOAT
    if name == "NEXT_BUFFER":
        return b"\x8e" + bytes(8)
    return b""  # READONLY_BUFFER changes no value


def _skip_array(recorder: Recorder, wrapper: Call) -> list[bytes]:
    recorder.skipped = True
    if not _SKIP_ARRAYS.get():
        return []
    state = wrapper.state if isinstance(wrapper.state, dict) else {}
    shape, dtype = state.get("shape"), state.get("dtype")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise Unreadable(f"a joblib array with an unreadable shape {shape!r}")
    itemsize, has_object = _dtype_size(dtype)
    if has_object:
        inner = Recorder(recorder.source)
        found = _read_one(inner)
        return [bytes(inner.kept), *found]
    recorder.recording = False
    try:
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = recorder.read(1)
            recorder.skip(padding[0] if padding else 0)
        recorder.skip(math.prod(shape) * itemsize)
    finally:
        recorder.recording = True
    return []


def _dtype_size(dtype: object) -> tuple[int, bool]:
    """(item size as NumPy computes it from the descriptor, whether it holds objects)."""
    import numpy as np

    if not (isinstance(dtype, Call) and (dtype.module, dtype.name) == ("numpy", "dtype")):
        raise Unreadable("a joblib array whose dtype is not a numpy.dtype")
    descr = dtype.args[0] if isinstance(dtype.args, tuple) and dtype.args else None
    if not isinstance(descr, str):
        raise Unreadable(f"a joblib array with an unreadable dtype {descr!r}")
    try:
        itemsize = np.dtype(descr).itemsize
    except (TypeError, ValueError) as exc:
        raise Unreadable(f"a joblib array with dtype {descr!r}: {exc}") from None
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    fields = state[4] if len(state) > 4 and isinstance(state[4], dict) else {}
    declared = state[5] if len(state) > 5 else -1
    if declared not in (-1, itemsize) or not isinstance(declared, int):
        raise Unreadable(
            f"a joblib array whose dtype state says {declared!r} bytes, not {itemsize}"
        )
    has_object = descr.lstrip("<>|=").startswith("O") or any(
        _dtype_size(entry[0])[1] for entry in fields.values() if isinstance(entry, tuple) and entry
    )
    return itemsize, has_object


def message_line(exc: BaseException) -> str:
    """An exception's message on one line, cut to 200 characters (for a finding's message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
