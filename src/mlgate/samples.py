"""Latency samples for comparisons: a raw sample file, or the evidence of a stage that kept one.

A raw sample file is UTF-8 text with one latency in milliseconds per line; blank lines and
``#`` comments are skipped; it may be gzip-compressed (recognised by its magic bytes, whatever
its name). A line ``# round`` (a comment to other readers) starts a round: samples of
interleaved runs keep their rounds, so two such files are compared round by round (see
`mlgate.stats.compare_rounds`). Inside a round, a line ``# window`` starts the next of its time
windows (open loop, the sides sent requests in turn: window k of both files covers the same
seconds); a round without one is one window. Evidence names its samples in
``data["samples_artifact"]`` (relative to the evidence file's directory, and inside it) and lists
that file with its sha256 in ``artifacts``. Messages never quote a file's content: it may be
anything the path leads to.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mlgate import artifact_paths, evidence
from mlgate.errors import EvidenceError, MlgateError
from mlgate.stats import MIN_SAMPLES

# Far beyond any load run (tens of millions of samples); bounds memory against gzip bombs.
MAX_BYTES = 256 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
ROUND_MARKER = "# round"
WINDOW_MARKER = "# window"


class SampleError(MlgateError):
    """A sample file or evidence that does not hold usable latency samples."""


@dataclass(frozen=True, eq=False)
class Samples:
    values: npt.NDArray[np.float64]  # latencies in ms, read-only
    source: str  # where they came from, for messages and reports
    # Where each round starts in `values`, when the file marks rounds; else empty.
    round_starts: tuple[int, ...] = ()
    # Where each window after a round's first starts in `values`.
    window_starts: tuple[int, ...] = ()

    @property
    def rounds(self) -> list[npt.NDArray[np.float64]]:
        """The samples of each round, in order; [] when the file marks no rounds."""
        if not self.round_starts:
            return []
        ends = (*self.round_starts[1:], self.values.size)
        return [self.values[a:b] for a, b in zip(self.round_starts, ends, strict=True)]

    @property
    def windows(self) -> list[list[npt.NDArray[np.float64]]]:
        """Each round's samples in its time windows, in order; [] when no rounds are marked."""
        if not self.round_starts:
            return []
        ends = (*self.round_starts[1:], self.values.size)
        rounds = []
        for start, end in zip(self.round_starts, ends, strict=True):
            cuts = [start, *(w for w in self.window_starts if start < w < end), end]
            rounds.append([self.values[a:b] for a, b in itertools.pairwise(cuts)])
        return rounds


def read_samples(path: str | os.PathLike[str], minimum: int = MIN_SAMPLES) -> Samples:
    """Read latency samples from a raw sample file or from evidence; at least `minimum` of them."""
    path = Path(path)
    raw = _read(path)
    compressed = raw.startswith(_GZIP_MAGIC)
    content = _decompress(path, raw) if compressed else raw
    if content.removeprefix(_UTF8_BOM).lstrip()[:1] in (b"{", b"["):
        if compressed:
            raise SampleError(f"{path}: compressed JSON; evidence files are plain JSON")
        (values, starts, windows), source = _from_evidence(path)
    else:
        (values, starts, windows), source = _parse(path, content), str(path)
    if values.size < minimum:
        raise SampleError(f"{source}: {values.size} samples; a comparison needs at least {minimum}")
    values.flags.writeable = False
    return Samples(values=values, source=source, round_starts=starts, window_starts=windows)


def _from_evidence(path: Path) -> tuple[_Parsed, str]:
    try:
        document = evidence.read(path)
    except EvidenceError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
        raise SampleError(f"{path}: JSON but not mlgate evidence: {problem}") from None
    if document.status in ("error", "skipped"):
        why = f": {document.reason}" if document.reason else ""
        raise SampleError(
            f"{path}: the {document.stage} stage ended as {document.status}{why}; no samples"
        )
    name = document.data.get("samples_artifact")
    if not isinstance(name, str) or not name:
        raise SampleError(
            f"{path}: evidence of stage '{document.stage}' records no latency samples"
            " (no data.samples_artifact)"
        )
    # The name comes from evidence, which untrusted code may have written: read only a listed,
    # digest-checked regular file inside the evidence's directory (these very bytes are parsed).
    try:
        raw = artifact_paths.read(path.parent, document, name, MAX_BYTES)
    except artifact_paths.ArtifactRefused as exc:
        raise SampleError(f"{path}: samples artifact {exc}") from None
    target = path.parent / name
    content = _decompress(target, raw) if raw.startswith(_GZIP_MAGIC) else raw
    return _parse(target, content), f"{path} (samples {name})"


def _read(path: Path) -> bytes:
    # A regular file only: a FIFO or a device such as /dev/zero would block or never end.
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SampleError(f"{path}: not a regular file")
        if info.st_size > MAX_BYTES:
            raise SampleError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a sample file")
        with path.open("rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SampleError(f"{path}: no such file") from None
    except OSError as exc:
        raise SampleError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _decompress(path: Path, raw: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            content = handle.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise SampleError(f"{path}: corrupt gzip data: {exc}") from None
    if len(content) > MAX_BYTES:
        raise SampleError(
            f"{path}: more than {MAX_BYTES >> 20} MiB uncompressed; not a sample file"
        )
    return content


# The samples, where each round starts, where each window after a round's first starts.
_Parsed = tuple[npt.NDArray[np.float64], tuple[int, ...], tuple[int, ...]]


def _parse(path: Path, content: bytes) -> _Parsed:
    if b"\x00" in content:
        raise SampleError(f"{path}: binary data, not a sample file")
    try:
        text = content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise SampleError(f"{path}: binary data, not a sample file (not UTF-8 text)") from None
    values: list[float] = []
    starts: list[int] = []
    windows: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip().lower().startswith(WINDOW_MARKER):
            if not starts or len(values) in (starts[-1], *windows[-1:]):
                raise SampleError(f"{path}: line {number}: a window follows no samples of a round")
            windows.append(len(values))
            continue
        if line.strip().lower().startswith(ROUND_MARKER):
            if empty := _empty_part(starts, windows, len(values)):
                raise SampleError(f"{path}: line {number}: the {empty} before holds no samples")
            if not starts and values:
                raise SampleError(
                    f"{path}: line {number}: samples before the first '{ROUND_MARKER}' line"
                )
            starts.append(len(values))
            continue
        field = line.split("#", 1)[0].strip()
        if not field:
            continue
        try:
            value = float(field)
        except ValueError:
            raise SampleError(
                f"{path}: line {number}: not a latency in ms (one number per line)"
            ) from None
        if not math.isfinite(value):
            raise SampleError(f"{path}: line {number}: not a finite number")
        if value < 0:
            raise SampleError(f"{path}: line {number}: a negative latency")
        values.append(value)
    if not values:
        raise SampleError(f"{path}: no samples (empty, or only blank lines and comments)")
    if empty := _empty_part(starts, windows, len(values)):
        raise SampleError(f"{path}: the last {empty} holds no samples")
    return np.array(values, dtype=np.float64), tuple(starts), tuple(windows)


def _empty_part(starts: list[int], windows: list[int], count: int) -> str:
    """'round' or 'window' when the round or window begun last holds no samples yet, else ''."""
    if starts and starts[-1] == count:
        return "round"
    return "window" if windows and windows[-1] == count else ""
