"""Which files are models, by their content: a loader does not care about a file's name, so a
directory scan must not either. A protocol-0 pickle named `weights.sav`, a gzip'd pickle named
`model.pkl.gz`, a PyTorch zip named `.pth.tar` and a skops file all load; each is found here by
its first bytes (pickle opcodes, compression headers, zip members), and compressed files are
opened the way joblib and the compression modules open them.
"""

from __future__ import annotations

import contextlib
import io
import pickletools
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from mlgate.scanners.numpy_dtypes import NPY_MAGIC
from mlgate.scanners.pickle_machine import Machine, Malformed

_CHUNK = 1 << 20
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Compressed containers by their first bytes: what joblib.load opens (joblib.compressor) and
# what gzip/bz2/lzma.open read. bz2 and zlib by more than their first byte, which a raw pickle
# or a text file may start with.
_COMPRESSIONS = (
    (re.compile(rb"\x1f\x8b"), "gzip"),
    (re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)"), "bz2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"\x5d\x00\x00"), "lzma"),
    (re.compile(rb"\x04\x22\x4d\x18"), "lz4"),
    (re.compile(rb"\x78[\x01\x5e\x9c\xda]"), "zlib"),
    (re.compile(rb"ZF0x"), "joblib-compat"),
)


@dataclass(frozen=True)
class Sniffed:
    """What a file is: `container` is "pickle", "zip", "npy" or "hdf5"; `compression` the
    compressed container around a pickle, if any; `zip_kind` what a zip holds."""

    container: str
    compression: str | None = None
    zip_kind: str | None = None  # "pytorch", "numpy", "skops", "keras"


def sniff(path: Path, deadline: float | None = None) -> Sniffed | None:
    """What loadable model format the file's content is, or None when it is none."""
    head = _head(path, 16)
    if head.startswith(_ZIP_MAGICS):
        kind = zip_kind(path)
        return None if kind is None else Sniffed("zip", zip_kind=kind)
    if head.startswith(NPY_MAGIC):
        return Sniffed("npy")
    if head.startswith(_HDF5_MAGIC):
        return Sniffed("hdf5")
    compression = compression_of(head)
    if compression is not None:
        try:
            with open_stream(path, compression) as stream:
                pickled = looks_pickled(stream, deadline)
        except Exception:  # not the container it looked like, or broken: not a model file
            return None
        return Sniffed("pickle", compression) if pickled else None
    try:
        with path.open("rb") as handle:
            return Sniffed("pickle") if looks_pickled(handle, deadline) else None
    except OSError:
        return None  # reported when the file is scanned


def compression_of(head: bytes) -> str | None:
    return next((name for magic, name in _COMPRESSIONS if magic.match(head)), None)


def looks_pickled(source: IO[bytes] | io.BufferedIOBase, deadline: float | None = None) -> bool:
    """Whether the stream is a pickle: opcodes that the symbolic machine runs without error,
    from byte 0 whatever it is, up to an import (of a dotted name, for protocol 0's text GLOBAL)
    or a STOP. The whole stream is parsed, not a prefix: a long BINBYTES of padding must not
    hide the import after it. Text fails early (an unknown opcode, an empty stack), and so does
    binary data that merely starts with a protocol header (a safetensors header length of 384
    is b"\x80\x01..."): pickle too would fail there before running anything. Past `deadline`
    the stream counts as a pickle, so that it is scanned (and the scan times out), not skipped."""
    machine = Machine()
    try:
        opcodes = pickletools.genops(cast("IO[bytes]", _Unpositioned(source)))
        for count, (opcode, argument, position) in enumerate(opcodes):
            if deadline is not None and count % 4096 == 0 and time.monotonic() > deadline:
                return True
            machine.step(opcode.name, argument, position or 0)
            if opcode.name in ("GLOBAL", "INST"):
                module, _, name = str(argument).partition(" ")
                return bool(_DOTTED.fullmatch(module) and _DOTTED.fullmatch(name))
            if opcode.name in ("STACK_GLOBAL", "EXT1", "EXT2", "EXT4"):
                return True
    except Exception:  # not a pickle: pickle.load too fails here before importing anything
        return False
    return True  # reached STOP


class _Unpositioned:
    """A stream as pickletools reads it, without tell(): a decompressor's raises."""

    def __init__(self, source: IO[bytes] | io.BufferedIOBase) -> None:
        self.read = source.read
        self.readline = source.readline


def zip_kind(path: Path) -> str | None:
    """What a zip archive holds that a loader unpickles or reads as a model; None when it holds
    nothing of the kind, "unreadable" when zipfile cannot read it (it is scanned, and reported
    unreadable: a loader may read what zipfile cannot)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            names = [info.filename for info in entries]
            pickled = any(_member_pickled(archive, info) for info in entries)
    except Exception:  # any way the archive fails to read
        return "unreadable"
    if "schema.json" in names:
        return "skops"
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return "keras"
    if names and all(name.endswith(".npy") for name in names):
        return "numpy"
    return "pytorch" if pickled else None


def _member_pickled(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    if info.filename.endswith((".pkl", ".pickle")):
        return True
    with archive.open(info) as member:  # by ZipInfo: a repeated name opens only its last entry
        return looks_pickled(member)


def _head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""  # reported when the file is scanned


@contextlib.contextmanager
def open_stream(path: Path, compression: str | None) -> Iterator[io.BufferedIOBase]:
    with path.open("rb") as raw:
        if compression is None:
            yield raw
        elif compression == "zlib":
            yield io.BufferedReader(_ZlibReader(raw))
        elif compression == "gzip":
            import gzip

            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream
        elif compression == "bz2":
            import bz2

            with bz2.BZ2File(raw) as stream:
                yield stream
        elif compression in ("xz", "lzma"):
            import lzma

            container = lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE
            with lzma.LZMAFile(raw, format=container) as stream:
                yield stream
        elif compression == "lz4":
            try:
                import lz4.frame  # type: ignore[import-not-found,import-untyped,unused-ignore]
            except ImportError:
                raise Malformed("lz4-compressed, and lz4 is not installed") from None
            with lz4.frame.LZ4FrameFile(raw) as stream:
                yield stream
        else:
            raise Malformed(f"{compression} container (joblib before 0.9.3) is not supported")


class _ZlibReader(io.RawIOBase):
    """joblib's zlib container (a plain zlib stream), decompressed as it is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zlib

        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._inflate.eof:
                return 0
            source = self._inflate.unconsumed_tail or self._raw.read(_CHUNK)
            if not source:
                raise Malformed("compressed data ends early")
            self._pending = self._inflate.decompress(source, _CHUNK)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
