"""The byte streams the pickle stream finder reads through: a recorder that keeps what it read,
a cap on decompressed size (a compression bomb is unreadable, not a hang), and a streaming
zlib reader."""

from __future__ import annotations

import io
import zlib
from typing import IO, Any, Protocol

# Decompressed data is read this far at most: a compression bomb is unreadable, not a hang.
MAX_DECOMPRESSED = 16 << 30


class Reader(Protocol):
    """A buffered byte stream: io.BufferedReader over a file, a zip member or a decompressor."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...
    def peek(self, size: int = 0, /) -> bytes: ...
    def seekable(self) -> bool: ...


class Recorder:
    """A reader for pickletools that keeps the bytes it read, except while skipping arrays."""

    def __init__(self, source: Reader) -> None:
        self.source = source
        self.kept = bytearray()
        self.recording = True
        self.skipped = False

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if self.recording:
            self.kept += data
        return data

    def readline(self) -> bytes:
        data = self.source.readline()
        if self.recording:
            self.kept += data
        return data

    def replace_from(self, start: int, replacement: bytes) -> None:
        del self.kept[start:]
        self.kept += replacement

    def skip(self, size: int) -> None:
        while size > 0:
            chunk = self.source.read(min(size, 1 << 20))
            if not chunk:
                raise EOFError(f"array data ends {size} bytes early")
            size -= len(chunk)


class Capped(io.RawIOBase):
    """A stream that refuses to go on past MAX_DECOMPRESSED bytes (a compression bomb)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        self._total += len(data)
        if self._total > MAX_DECOMPRESSED:
            raise OSError(f"more than {MAX_DECOMPRESSED >> 30} GiB once decompressed")
        buffer[: len(data)] = data
        return len(data)


class ZlibReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._done:
            chunk = self._inflate.unconsumed_tail or self._raw.read(1 << 16)
            data = self._inflate.decompress(chunk, len(buffer))
            if not chunk and not data:
                self._done = True
            if data:
                buffer[: len(data)] = data
                return len(data)
            if self._inflate.eof:
                self._done = True
        return 0
