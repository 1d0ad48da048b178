"""Pickle and joblib files read the way joblib.load reads them, without loading them.

joblib writes each NumPy array's raw bytes in the middle of the pickle stream, right after the
array's wrapper is built; a plain pickle parser stops there, and whatever follows the first
array (where a payload would sit) goes unseen. We walk the stream with the symbolic machine, skip
each array's bytes exactly as joblib does (sizes as NumPy computes them, see numpy_dtypes), and
go on to the end of the file: every pickle in it, every object array's nested pickle, every
import. Compressed containers are opened first (model_sniff).
"""

from __future__ import annotations

import io
import math
import pickletools
import time
from dataclasses import dataclass, field

from mlgate.scanners.errors import ScanError
from mlgate.scanners.numpy_dtypes import pickled_layout
from mlgate.scanners.pickle_machine import (
    Built,
    Global,
    Import,
    Machine,
    Malformed,
    Pairs,
    describe,
)

_CHUNK = 1 << 20
_WRAPPER_MODULES = ("joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle")
# Protocols 0 and 1 build plain objects with copyreg._reconstructor(cls, base, state), named
# copy_reg (Python 2's name) when the pickler maps names for Python 2.
_RECONSTRUCTORS = (Global("copyreg", "_reconstructor"), Global("copy_reg", "_reconstructor"))
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER


class Tape:
    """The byte stream pickletools reads: records the pickle bytes it reads (for picklescan)
    and skips joblib's array bytes. Reads in bounded chunks, so a length field claiming
    exabytes fails on the data actually there instead of allocating it."""

    def __init__(self, stream: io.BufferedIOBase, deadline: float, tool: str) -> None:
        self._stream = stream
        self._deadline = deadline
        self._tool = tool
        self._pushed_back = b""
        self.position = 0
        self.recording: bytearray | None = None

    def read(self, size: int = -1) -> bytes:
        taken = len(self._pushed_back) if size < 0 else min(size, len(self._pushed_back))
        data = bytearray(self._pushed_back[:taken])
        self._pushed_back = self._pushed_back[taken:]
        while size < 0 or len(data) < size:
            chunk = self._stream.read(_CHUNK if size < 0 else min(size - len(data), _CHUNK))
            if not chunk:
                break
            data += chunk
        self.position += len(data)
        if self.recording is not None:
            self.recording += data
        return bytes(data)

    def tell(self) -> int:  # for the positions in pickletools' error messages
        return self.position

    def readline(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)

    def skip(self, size: int) -> None:
        """Read past `size` bytes that are not pickle, without recording them."""
        recording, self.recording = self.recording, None
        try:
            while size > 0:
                if time.monotonic() > self._deadline:
                    raise ScanError(f"{self._tool}: timed out reading a joblib file's arrays")
                chunk = self.read(min(size, _CHUNK))
                if not chunk:
                    raise Malformed("file ends inside a numpy array's data")
                size -= len(chunk)
        finally:
            self.recording = recording

    def skip_counted(self) -> None:
        """Read past a length byte and as many bytes as it says (joblib's array padding)."""
        recording, self.recording = self.recording, None
        try:
            length = self.read(1)
        finally:
            self.recording = recording
        if not length:
            raise Malformed("file ends before a numpy array's data")
        self.skip(length[0])

    def at_end(self) -> bool:
        byte = self.read(1)
        if byte:
            self.position -= 1
            if self.recording is not None:
                del self.recording[-1]
            self._pushed_back = byte + self._pushed_back
        return not byte


@dataclass
class Split:
    streams: list[bytes] = field(default_factory=list)  # each pickle, array bytes left out
    imports: list[Import] = field(default_factory=list)  # every global any of them imports
    arrays: int = 0  # joblib arrays whose bytes were skipped
    problem: str | None = None  # why reading stopped early
    lies: list[str] = field(default_factory=list)  # array states joblib and we would misread
    results: list[object] = field(default_factory=list)  # what each pickle's STOP returned


def split_pickles(tape: Tape) -> Split:
    """The pickle streams in the file as joblib.load reads them: each top-level pickle with its
    arrays' raw bytes left out (what remains is one well-formed pickle), and each object
    array's own nested pickle. On a problem, what was read so far is still returned: a
    truncated pickle runs what precedes the break."""
    split = Split()
    if tape.at_end():
        split.problem = "the file is empty"
        return split
    pickles = 0
    while not tape.at_end() and pickles < _legacy_torch_pickles(split):
        tape.recording = bytearray()
        pickles += 1
        try:
            split.results.append(_read_one_pickle(tape, split))
        except ScanError:
            raise
        except Exception as exc:  # any way the stream fails to parse: pickle would fail too
            split.problem = f"not a pickle that pickle or joblib can load: {describe(exc)}"
            return split
        finally:
            split.streams.append(bytes(tape.recording))
            tape.recording = None
    return split


def _legacy_torch_pickles(split: Split) -> float:
    """How many pickles to read: torch.save's legacy format (a magic number first) is five
    pickles followed by raw storage bytes that torch.load never unpickles; others to the end."""
    return 5 if split.results[:1] == [_LEGACY_TORCH_MAGIC] else math.inf


def _read_one_pickle(tape: Tape, split: Split) -> object:
    """Read one pickle to its STOP, skipping joblib arrays; return what STOP returned."""
    machine = Machine(imports=split.imports)
    while True:
        wrapper = None
        for opcode, argument, position in pickletools.genops(tape):  # type: ignore[arg-type]
            if opcode.name == "FRAME":
                machine.frame_end = tape.position + int(argument or 0)
            built = machine.step(opcode.name, argument, position or 0)
            if built is not None and _is_array_wrapper(built):
                wrapper = built
                break
        else:
            return machine.result  # STOP: the pickle is complete
        # joblib's loader reads the array from the file right after BUILD; the pickler ends
        # its frame there. A frame running on would make pickle and us read different bytes.
        if tape.position < machine.frame_end:
            raise Malformed("a numpy array's data starts inside a pickle frame")
        split.arrays += 1
        _skip_array(tape, wrapper, split)


def _skip_array(tape: Tape, wrapper: Built, split: Split) -> None:
    """Past one array's data, as joblib's NumpyArrayWrapper.read_array reads it."""
    count, itemsize, has_objects, aligned = _array_layout(wrapper, split)
    if has_objects:
        # Object arrays are a nested pickle: its own stream for picklescan, its imports ours.
        outer, tape.recording = tape.recording, bytearray()
        nested = Machine(imports=split.imports)
        try:
            for opcode, argument, position in pickletools.genops(tape):  # type: ignore[arg-type]
                nested.step(opcode.name, argument, position or 0)
        finally:
            split.streams.append(bytes(tape.recording))
            tape.recording = outer
        return
    if aligned:
        tape.skip_counted()
    tape.skip(count * itemsize)


def _array_layout(wrapper: Built, split: Split) -> tuple[int, int, bool, bool]:
    """(element count, item size, holds objects, padded) from the wrapper's pickled state."""
    state = wrapper.state
    if not isinstance(state, Pairs):
        raise Malformed("a joblib array wrapper without its attributes")
    shape = state.get("shape")
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise Malformed(f"a joblib array with shape {shape!r}")
    layout = pickled_layout(state.get("dtype"))
    split.lies.extend(layout.lies)
    # As NumPy would build it, even when the state lies: that is what joblib.load reads.
    itemsize = max(layout.itemsize, 0)
    # joblib reads the padding byte whenever the attribute is there and not None.
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape), itemsize, layout.hasobject, aligned


def _is_array_wrapper(built: Built) -> bool:
    factory = built.factory
    if factory in _RECONSTRUCTORS and isinstance(built.args, tuple):
        factory = built.args[0] if built.args else None
    return (
        isinstance(factory, Global)
        and factory.name == "NumpyArrayWrapper"
        and factory.module in _WRAPPER_MODULES
    )
