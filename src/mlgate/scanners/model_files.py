"""Model files: picklescan over the formats that run code when loaded (pickle, joblib, PyTorch,
numpy object arrays), plus what picklescan leaves open, each failing closed:

- joblib writes each numpy array's raw bytes in the middle of the pickle stream, where
  picklescan's parser stops; everything after the first array (where a payload would sit) went
  unseen. We split the file the way joblib's loader reads it, leaving the array bytes out, and
  hand picklescan the whole pickle stream; compressed joblib files are decompressed first.
- a file picklescan cannot fully parse (truncated, corrupt archive, not a pickle at all) is a
  high "unscannable-model" finding, never a silent pass; picklescan only logs those.
- Keras: `.keras` archives are checked for Lambda layers (Python code run at load time); an
  HDF5 `.h5` model cannot be read without h5py and is reported as unscannable.

Severities: an import picklescan rates dangerous (os.system, subprocess, builtins.eval, ...) is
critical. Imports on neither of its lists (every scikit-learn class) are normal in models, so
they are listed in the low "unsafe-format" note that every pickle-based file gets, not reported
one by one. A Keras Lambda layer is high: code that runs on load unless Keras' safe_mode stops
it. The files are read, never unpickled or imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import pickletools
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, ClassVar

from mlgate.evidence import Finding, Severity
from mlgate.scanners.interface import ScanError, Scanner, ScanResult, ScanTargets, Source
from mlgate.scanners.interface import fingerprint as make_fingerprint

TOOL = "picklescan"
SOURCE: Source = "model"
UNSAFE_IMPORT = "unsafe-pickle-import"
UNSCANNABLE = "unscannable-model"
UNSAFE_FORMAT = "unsafe-format"
KERAS_LAMBDA = "keras-lambda-layer"

# Format by file name; a directory is walked for these. `.bin` is also raw weights of other
# tools, so in a directory only a `.bin` that starts like a pickle or a zip is scanned.
_FORMATS = {
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".dill": "pickle",
    ".joblib": "joblib",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".bin": "pytorch",
    ".ckpt": "pytorch",
    ".npy": "numpy",
    ".npz": "numpy",
    ".h5": "keras-h5",
    ".hdf5": "keras-h5",
    ".keras": "keras",
}
# Formats that hold data only: nothing to scan for code.
_SAFE_SUFFIXES = (".safetensors", ".onnx", ".gguf", ".tflite", ".weights.h5")
# What each pickle-based format is called, and the safe format to use instead.
_SKOPS = "save with skops (scikit-learn) or export to ONNX, which load without running code"
_ADVICE = {
    "pickle": ("a pickle", _SKOPS),
    "joblib": ("a joblib pickle", _SKOPS),
    "pytorch": ("a PyTorch pickle", "save the weights as safetensors"),
    "numpy": (
        "a numpy file with pickled object arrays",
        "save without object arrays (allow_pickle=False) or as safetensors",
    ),
}
_PICKLE_MAGIC = re.compile(rb"\x80[\x02-\x05]")
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
# joblib's compressed containers by their first bytes (joblib.compressor); "BZh" plus a block
# size digit, not just "BZ", which a raw pickle may start with (BINBYTES).
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x78", "zlib"),
    (b"ZF", "joblib-compat"),
)


class ModelFileScanner(Scanner):
    name: ClassVar[str] = TOOL
    sources: ClassVar[tuple[Source, ...]] = (SOURCE,)

    def applies(self, targets: ScanTargets) -> bool:
        return bool(targets.models)

    def scan(self, targets: ScanTargets) -> ScanResult:
        try:
            from picklescan import scanner  # type: ignore[import-untyped]
        except ImportError:
            raise ScanError(f"{TOOL}: not installed (pip install picklescan)") from None
        deadline = time.monotonic() + targets.timeout
        files, safe = _model_files(targets)
        result = ScanResult(tool_versions={TOOL: metadata.version("picklescan")})
        scanned: dict[str, str] = {}
        for path, kind in files:
            if time.monotonic() > deadline:
                raise ScanError(f"{TOOL}: timed out after {targets.timeout:g} s")
            shown = _shown(path, targets.workdir)
            scanned[shown] = kind
            result.findings.extend(_scan_file(scanner, path, shown, kind, deadline))
        result.data = {
            "files": scanned,
            "safe_format_files": [_shown(path, targets.workdir) for path in safe],
        }
        return result


# --- which files ---------------------------------------------------------------------------


def _model_files(targets: ScanTargets) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(file, format) to scan, and the files in data-only formats, from files and directories."""
    chosen: list[tuple[Path, str]] = []
    safe: list[Path] = []
    for target in targets.models:
        path = target if target.is_absolute() else targets.workdir / target
        if path.is_dir():
            for base, directories, names in os.walk(path):
                directories.sort()
                for name in sorted(names):
                    _choose(Path(base) / name, chosen, safe, explicit=False)
        elif path.exists():
            _choose(path, chosen, safe, explicit=True)
        else:
            raise ScanError(f"{TOOL}: model path does not exist: {path}")
    return chosen, safe


def _choose(
    path: Path, chosen: list[tuple[Path, str]], safe: list[Path], *, explicit: bool
) -> None:
    name = path.name.lower()
    if name.endswith(_SAFE_SUFFIXES):
        safe.append(path)
        return
    kind = _FORMATS.get(path.suffix.lower())
    head = _head(path)
    looks_pickled = bool(_PICKLE_MAGIC.match(head)) or head.startswith(_ZIP_MAGIC)
    if kind == "pytorch" and path.suffix.lower() == ".bin" and not explicit and not looks_pickled:
        return  # raw weights of another tool, not a torch.save file
    if kind is None:
        if not explicit and not _PICKLE_MAGIC.match(head):
            return  # not a model file
        kind = "pickle"  # named explicitly, or a pickle under another name: scan as one
    chosen.append((path, kind))


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(8)
    except OSError:
        return b""  # reported when the file is scanned


# --- one file ------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What picklescan (and our own reading) made of one file."""

    dangerous: set[str] = field(default_factory=set)
    suspicious: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    pickled: bool = False  # the file holds pickle data

    def add(self, found: Any, *, partial_expected: bool = False) -> None:
        """Merge a picklescan ScanResult."""
        for imported in found.globals:
            dotted = f"{imported.module}.{imported.name}"
            self.pickled = True
            if imported.safety.value == "dangerous":
                self.dangerous.add(dotted)
            elif imported.safety.value == "suspicious":
                self.suspicious.add(dotted)
        if found.scan_err and not partial_expected:
            self.problems.append("picklescan could not parse all of it")


def _scan_file(scanner: Any, path: Path, shown: str, kind: str, deadline: float) -> list[Finding]:
    if kind == "keras":
        return _keras_findings(path, shown)
    # Pickle, joblib and PyTorch files are pickles whatever their content; numpy files only
    # with object arrays, which show as imports.
    outcome = _Outcome(pickled=kind in ("pickle", "joblib", "pytorch"))
    if kind == "keras-h5":
        outcome.problems.append(
            "picklescan does not read Keras HDF5 models; save it as .keras (its Lambda layers "
            "are checked) or keep weights only (.weights.h5)"
        )
    elif kind in ("pickle", "joblib") and not _head(path).startswith(_ZIP_MAGIC):
        _scan_pickle_stream(scanner, path, shown, outcome, deadline)
    else:
        # Zip archives (PyTorch, .npz), .npy and legacy PyTorch files: picklescan's own reading.
        with _picklescan_problems() as problems:
            try:
                with path.open("rb") as handle:
                    outcome.add(scanner.scan_bytes(handle, shown, path.suffix.lower()))
            except ImportError as exc:
                raise ScanError(f"{TOOL}: cannot scan {shown}: {exc}") from None
            except Exception as exc:  # any failure to read the file is a finding, not a crash
                problems.append(_describe(exc))
        outcome.problems.extend(problems)
    return _findings(outcome, shown, kind)


def _scan_pickle_stream(
    scanner: Any, path: Path, shown: str, outcome: _Outcome, deadline: float
) -> None:
    """A pickle or joblib file, read both ways it may be loaded: as joblib.load reads it (array
    bytes skipped, compressed containers opened) and as pickle.load reads it."""
    head = _head(path)
    compression = next((name for magic, name in _COMPRESSIONS if head.startswith(magic)), None)
    if head.startswith(b"BZh") and head[3:4].isdigit():
        compression = "bz2"
    try:
        with _open_stream(path, compression) as stream:
            split = _split_pickles(_Tape(stream, deadline))
    except ScanError:
        raise
    except Exception as exc:  # unreadable in any way: a finding
        split = _Split(problem=_describe(exc))
    if split.problem:
        outcome.problems.append(split.problem)
    with _picklescan_problems() as problems:
        try:
            for stream_bytes in split.streams:
                found = scanner.scan_pickle_bytes(io.BytesIO(stream_bytes), shown, False)
                outcome.add(found)
        except Exception as exc:  # picklescan gave up on it: a finding, not a crash
            problems.append(_describe(exc))
    outcome.problems.extend(problems)
    if split.arrays and compression is None:
        # pickle.load would read the array bytes as pickle opcodes: scan that reading too. It
        # stops with a parse error at the first array, which is expected and not a problem.
        with _picklescan_problems(), path.open("rb") as handle:
            try:
                outcome.add(scanner.scan_pickle_bytes(handle, shown), partial_expected=True)
            except Exception as exc:
                outcome.problems.append(f"read as a plain pickle: {_describe(exc)}")


def _findings(outcome: _Outcome, shown: str, kind: str) -> list[Finding]:
    findings = [
        _finding(
            f"pickle:{dotted}",
            "critical",
            UNSAFE_IMPORT,
            shown,
            f"{shown} imports {dotted} when unpickled: loading it can run arbitrary code",
            title="Dangerous import in a pickle",
            key=dotted,
        )
        for dotted in sorted(outcome.dangerous)
    ]
    if outcome.problems:
        problem = "; ".join(dict.fromkeys(outcome.problems))  # in order, without repeats
        findings.append(
            _finding(
                UNSCANNABLE,
                "high",
                UNSCANNABLE,
                shown,
                f"{shown} could not be fully scanned: {problem}",
                title="Model file not fully scanned",
                detail="What a scanner cannot read may hide anything: fix, replace or waive it.",
            )
        )
    if outcome.pickled and kind in _ADVICE:
        label, advice = _ADVICE[kind]
        listed = sorted(outcome.suspicious)
        imports = ", ".join(listed[:20]) + (
            f" and {len(listed) - 20} more" if len(listed) > 20 else ""
        )
        findings.append(
            _finding(
                f"{UNSAFE_FORMAT}:{kind}",
                "low",
                UNSAFE_FORMAT,
                shown,
                f"{shown} is {label}, which can run code when loaded: {advice}",
                title="Pickle format where a safe format exists",
                detail=f"imports not on picklescan's safe list: {imports}" if listed else None,
                key=kind,
            )
        )
    return findings


def _finding(
    finding_id: str,
    severity: Severity,
    rule: str,
    shown: str,
    message: str,
    *,
    title: str,
    detail: str | None = None,
    key: str = "",
) -> Finding:
    return Finding(
        id=finding_id,
        severity=severity,
        message=message,
        rule=rule,
        path=shown,
        title=title,
        detail=detail,
        tool=TOOL,
        source=SOURCE,
        fingerprint=make_fingerprint(TOOL, rule, shown, key),
    )


@contextlib.contextmanager
def _picklescan_problems() -> Iterator[list[str]]:
    """What picklescan only logs: files and archive members it could not parse. Its own lines
    about dangerous imports are left out (they are in its results), and nothing reaches the
    console."""
    logger = logging.getLogger("picklescan")
    handler = _ProblemHandler()
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))
    logger.propagate = False
    try:
        yield handler.problems
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _ProblemHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        template = str(record.msg)
        if " import '%s %s' FOUND" in template:
            return  # a dangerous import: in the scan result
        if template.startswith("WARNING: Invalid PyTorch magic number"):
            return  # picklescan goes on to read it as a plain pickle
        text = " ".join(record.getMessage().split())
        self.problems.append(re.sub(r"^(WARNING|ERROR): ", "", text))


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, _Malformed):
        return text  # our own words; the class name adds nothing
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- Keras ---------------------------------------------------------------------------------


def _keras_findings(path: Path, shown: str) -> list[Finding]:
    """A Lambda layer stores Python bytecode that Keras runs when it loads the model (unless
    safe_mode holds); picklescan does not read Keras files, so we read config.json."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except Exception as exc:  # a corrupt or foreign archive: not scanned, a finding
        return _findings(_Outcome(problems=[_describe(exc)]), shown, "keras")
    return [
        _finding(
            "keras:Lambda",
            "high",
            KERAS_LAMBDA,
            shown,
            f"{shown} has a Keras Lambda layer {layer!r}: its Python code runs when the model "
            "is loaded with safe_mode=False or by an older Keras",
            title="Keras Lambda layer",
            detail="Replace it with a registered custom layer, or waive it after review.",
            key=layer,
        )
        for layer in _lambda_layers(config)
    ]


def _lambda_layers(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            config = node.get("config")
            yield str(config.get("name") if isinstance(config, dict) else None)
        for value in node.values():
            yield from _lambda_layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _lambda_layers(value)


# --- joblib-aware reading of pickle streams ------------------------------------------------


class _Malformed(Exception):
    """The stream is not what any loader would accept (or hides something we cannot follow)."""


@contextlib.contextmanager
def _open_stream(path: Path, compression: str | None) -> Iterator[io.BufferedIOBase]:
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
                raise _Malformed("lz4-compressed, and lz4 is not installed") from None
            with lz4.frame.LZ4FrameFile(raw) as stream:
                yield stream
        else:
            raise _Malformed(f"{compression} container (joblib before 0.9.3) is not supported")


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
                raise _Malformed("compressed data ends early")
            self._pending = self._inflate.decompress(source, _CHUNK)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _Tape:
    """The byte stream pickletools reads: records the pickle bytes it reads (for picklescan)
    and skips joblib's array bytes. Reads in bounded chunks, so a length field claiming
    exabytes fails on the data actually there instead of allocating it."""

    def __init__(self, stream: io.BufferedIOBase, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline
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
                    raise ScanError(f"{TOOL}: timed out reading a joblib file's arrays")
                chunk = self.read(min(size, _CHUNK))
                if not chunk:
                    raise _Malformed("file ends inside a numpy array's data")
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
            raise _Malformed("file ends before a numpy array's data")
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
class _Split:
    streams: list[bytes] = field(default_factory=list)
    arrays: int = 0  # joblib arrays whose bytes were skipped
    problem: str | None = None


def _split_pickles(tape: _Tape) -> _Split:
    """The pickle streams in the file as joblib.load reads them: each top-level pickle with its
    arrays' raw bytes left out (what remains is one well-formed pickle), and each object
    array's own nested pickle. On a problem, the streams read so far are still returned: a
    truncated pickle runs what precedes the break."""
    split = _Split()
    if tape.at_end():
        split.problem = "the file is empty"
        return split
    while not tape.at_end():
        tape.recording = bytearray()
        try:
            _read_one_pickle(tape, split)
        except ScanError:
            raise
        except Exception as exc:  # any way the stream fails to parse: pickle would fail too
            split.problem = f"not a pickle that pickle or joblib can load: {_describe(exc)}"
            return split
        finally:
            split.streams.append(bytes(tape.recording))
            tape.recording = None
    return split


def _read_one_pickle(tape: _Tape, split: _Split) -> None:
    machine = _Machine()
    while True:
        wrapper = None
        for opcode, argument, _ in pickletools.genops(tape):  # type: ignore[arg-type]
            if opcode.name == "FRAME":
                machine.frame_end = tape.position + int(argument or 0)
            wrapper = machine.step(opcode.name, argument)
            if wrapper is not None:
                break
        else:
            return  # STOP: the pickle is complete
        # joblib's loader reads the array from the file right after BUILD; the pickler ends
        # its frame there. A frame running on would make pickle and we read different bytes.
        if tape.position < machine.frame_end:
            raise _Malformed("a numpy array's data starts inside a pickle frame")
        split.arrays += 1
        _skip_array(tape, wrapper, split)


def _skip_array(tape: _Tape, wrapper: _Object, split: _Split) -> None:
    """Past one array's data, as joblib's NumpyArrayWrapper.read_array reads it."""
    count, itemsize, has_objects, aligned = _array_layout(wrapper)
    if has_objects:
        # Object arrays are a nested pickle: its own stream for picklescan.
        outer, tape.recording = tape.recording, bytearray()
        try:
            for _ in pickletools.genops(tape):  # type: ignore[arg-type]
                pass
        finally:
            split.streams.append(bytes(tape.recording))
            tape.recording = outer
        return
    if aligned:
        tape.skip_counted()
    tape.skip(count * itemsize)


def _array_layout(wrapper: _Object) -> tuple[int, int, bool, bool]:
    """(element count, item size, holds objects, padded) from the wrapper's pickled state."""
    state = wrapper.state
    if not isinstance(state, _Dict):
        raise _Malformed("a joblib array wrapper without its attributes")
    shape = state.get("shape")
    dtype = state.get("dtype")
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise _Malformed(f"a joblib array with shape {shape!r}")
    if not (
        isinstance(dtype, _Object)
        and dtype.factory == _Global("numpy", "dtype")
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
        and isinstance(dtype.state, tuple)
    ):
        raise _Malformed("a joblib array whose dtype is not a plain numpy dtype")
    code: str = dtype.args[0]
    dtype_state: tuple[object, ...] = dtype.state
    flags = dtype_state[7] if len(dtype_state) > 7 else 0
    has_objects = code.startswith("O") or (isinstance(flags, int) and bool(flags & 1))
    size = dtype_state[5] if len(dtype_state) > 5 else -1
    if not (isinstance(size, int) and size > 0):
        digits = re.fullmatch(r"[A-Za-z?]+(\d+)", code)
        if digits is None:
            raise _Malformed(f"a joblib array of dtype {code!r} with no item size")
        size = int(digits.group(1))
    # joblib reads the padding byte whenever the attribute is there and not None.
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape), size, has_objects, aligned


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


_JOBLIB_WRAPPER_MODULES = ("joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle")
# Protocols 0 and 1 build plain objects with copyreg._reconstructor(cls, base, state), named
# copy_reg (Python 2's name) when the pickler maps names for Python 2.
_RECONSTRUCTORS = (_Global("copyreg", "_reconstructor"), _Global("copy_reg", "_reconstructor"))


class _Object:
    """The result of calling or instantiating a global: recorded, never built."""

    def __init__(self, factory: object, args: object) -> None:
        self.factory = factory
        self.args = args
        self.state: object = None


class _Dict:
    """A pickled dict as pairs (its keys need not be hashable here)."""

    def __init__(self, pairs: list[tuple[object, object]] | None = None) -> None:
        self.pairs = pairs or []

    def get(self, key: str) -> object:
        """The value last set for `key`, None when there is none (as getattr with a default)."""
        return next((value for name, value in reversed(self.pairs) if name == key), None)


_OPAQUE = object()  # a value the machine does not model (a set, a buffer, an extension)
_LITERALS = frozenset(
    (
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "FLOAT",
        "BINFLOAT",
    )
)
_CONSTANTS: dict[str, object] = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class _Machine:
    """Just enough of the pickle machine to know, at each BUILD, whether a joblib array wrapper
    was built and with what attributes. It only moves symbols around: nothing is imported or
    called. An opcode it does not know is a problem (fail closed)."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.frame_end = 0

    def step(self, name: str, argument: Any) -> _Object | None:
        """Apply one opcode; return the array wrapper a BUILD just completed, if any."""
        if name in _LITERALS:
            self._push(argument)
        elif name in _CONSTANTS:
            self._push(_CONSTANTS[name])
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        elif name == "BUILD":
            state = self._pop()
            target = self._top()
            if isinstance(target, _Object):
                target.state = state
                if _is_array_wrapper(target):
                    return target
        else:
            self._structure(name, argument)
        return None

    def _structure(self, name: str, argument: Any) -> None:
        if name == "EMPTY_LIST":
            self._push([])
        elif name == "EMPTY_TUPLE":
            self._push(())
        elif name == "EMPTY_DICT":
            self._push(_Dict())
        elif name == "EMPTY_SET":
            self._push(_OPAQUE)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self._pop() for _ in range(int(name[-1]))]
            self._push(tuple(reversed(items)))
        elif name == "TUPLE":
            self._push(tuple(self._pop_mark()))
        elif name == "LIST":
            self._push(self._pop_mark())
        elif name == "DICT":
            self._push(_pairs(self._pop_mark()))
        elif name == "FROZENSET":
            self._pop_mark()
            self._push(_OPAQUE)
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            target = self._top()
            if isinstance(target, list):
                target.extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            if name == "SETITEM":
                value, key = self._pop(), self._pop()
                items = [key, value]
            else:
                items = self._pop_mark()
            target = self._top()
            if isinstance(target, _Dict):
                target.pairs.extend(_pairs(items).pairs)
        else:
            self._references(name, argument)

    def _references(self, name: str, argument: Any) -> None:
        if name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "POP":
            # As pickle does: a POP with nothing above the mark pops the mark.
            self._pop() if self.stack else self._pop_mark()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "DUP":
            self._push(self._top())
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(argument) not in self.memo:
                raise _Malformed(f"memo entry {argument} is read before it is written")
            self._push(self.memo[int(argument)])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(argument)] = self._top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self._top()
        elif name in ("GLOBAL", "INST"):
            module, _, attribute = str(argument).partition(" ")
            found = _Global(module, attribute)
            self._push(found if name == "GLOBAL" else _Object(found, tuple(self._pop_mark())))
        elif name == "STACK_GLOBAL":
            named, module_named = self._pop(), self._pop()
            self._push(_Global(str(module_named), str(named)))
        elif name in ("REDUCE", "NEWOBJ"):
            args, factory = self._pop(), self._pop()
            self._push(_Object(factory, args))
        elif name == "NEWOBJ_EX":
            _, args, factory = self._pop(), self._pop(), self._pop()
            self._push(_Object(factory, args))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise _Malformed("OBJ without a class")
            self._push(_Object(items[0], tuple(items[1:])))
        elif name in ("EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER"):
            self._push(_OPAQUE)
        elif name == "BINPERSID":
            self._pop()
            self._push(_OPAQUE)
        elif name == "STOP":
            self._pop()
        else:
            raise _Malformed(f"pickle opcode {name} is not supported")

    def _push(self, value: object) -> None:
        # Always onto the current stack: popping a mark replaces it.
        self.stack.append(value)

    def _pop(self) -> object:
        if not self.stack:
            raise _Malformed("pickle stack underflow")
        return self.stack.pop()

    def _top(self) -> object:
        if not self.stack:
            raise _Malformed("pickle stack underflow")
        return self.stack[-1]

    def _pop_mark(self) -> list[object]:
        if not self.metastack:
            raise _Malformed("pickle MARK missing")
        items, self.stack = self.stack, self.metastack.pop()
        return items


def _pairs(items: list[object]) -> _Dict:
    if len(items) % 2:
        raise _Malformed("a pickled dict with an odd number of items")
    return _Dict(list(zip(items[::2], items[1::2], strict=True)))


def _is_array_wrapper(built: _Object) -> bool:
    factory = built.factory
    if factory in _RECONSTRUCTORS and isinstance(built.args, tuple):
        factory = built.args[0] if built.args else None
    return (
        isinstance(factory, _Global)
        and factory.name == "NumpyArrayWrapper"
        and factory.module in _JOBLIB_WRAPPER_MODULES
    )


def _shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when inside it (posix), else absolute."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
