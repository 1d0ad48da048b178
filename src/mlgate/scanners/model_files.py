"""Model files: every format that runs code when loaded (pickle, joblib, PyTorch, NumPy object
arrays, skops, Keras), judged by an allow list of what model libraries really pickle.

- Which files: by content, not name (model_targets, model_sniff): protocol-0 pickles under any
  name, compressed pickles, PyTorch zips named anything, skops files. A target with no model file
  in it is a high "no-model-file" finding: a scan of nothing is not a pass.
- What they import: a symbolic pickle machine (pickle_machine) walks every pickle stream
  (joblib's read the way joblib.load reads them, joblib_reader; archive members and .npy object
  arrays, model_archives) and lists every global it imports, resolving STACK_GLOBAL operands
  through the memo. An import outside the allow list (pickle_allowlist) is high; one whose name
  is computed at load time is critical; so is a joblib array whose dtype state disagrees with its
  own type (joblib.load and a reader would read different bytes).
- picklescan is a second opinion: an import it rates dangerous (os.system, builtins.eval...) is
  critical however it was reached, and what it cannot parse of a pickle stream is reported.
- A file that cannot be fully read (truncated, corrupt, not what its name says) is a high
  "unscannable-model" finding, never a silent pass. Keras: a Lambda layer (Python code run at
  load time) is high; HDF5 Keras models cannot be read and are reported unscannable.

Every pickle-based file also gets the low "unsafe-format" note pointing at a safe format. The
files are read, never unpickled or imported.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from mlgate.evidence import Finding
from mlgate.scanners import pickle_allowlist
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import ScanResult, ScanTargets
from mlgate.scanners.joblib_reader import Split, Tape, split_pickles
from mlgate.scanners.model_archives import read_npy_file, read_zip
from mlgate.scanners.model_engine import ModelEngine, check_deadline, import_engine
from mlgate.scanners.model_findings import TOOL, Outcome, findings_of, no_model_file
from mlgate.scanners.model_sniff import open_stream
from mlgate.scanners.model_targets import ModelFile, target_files
from mlgate.scanners.pickle_machine import Import, describe


class ModelFileScanner(ModelEngine):
    name: ClassVar[str] = TOOL

    def scan(self, targets: ScanTargets) -> ScanResult:
        scanner = import_engine(TOOL, "picklescan.scanner", "pip install picklescan")
        deadline = time.monotonic() + targets.timeout
        chosen = target_files(targets.models, targets.workdir, TOOL, deadline)
        result = ScanResult(tool_versions={TOOL: metadata.version("picklescan")})
        scanned: dict[str, str] = {}
        safe: list[str] = []
        for target in chosen:
            safe.extend(_shown(path, targets.workdir) for path in target.safe)
            if not target.files and not target.safe:
                result.findings.append(no_model_file(_shown(target.target, targets.workdir)))
            for model in target.files:
                check_deadline(TOOL, deadline, targets.timeout)
                shown = _shown(model.path, targets.workdir)
                scanned[shown] = model.kind
                result.findings.extend(_scan_file(scanner, model, shown, deadline))
        result.data = {
            "files": scanned,
            "safe_format_files": safe,
            "allow_list": pickle_allowlist.size(),
        }
        return result


# --- one file ------------------------------------------------------------------------------


def _scan_file(scanner: Any, model: ModelFile, shown: str, deadline: float) -> list[Finding]:
    path, kind, sniffed = model.path, model.kind, model.sniffed
    # Pickle, joblib and PyTorch files are pickles whatever their content; numpy files only
    # with object arrays.
    outcome = Outcome(pickled=kind in ("pickle", "joblib", "pytorch"))
    if sniffed.container == "hdf5":
        outcome.problems.append(
            "picklescan does not read Keras HDF5 models; save it as .keras (its Lambda layers "
            "are checked) or keep weights only (.weights.h5)"
        )
    elif sniffed.container == "pickle":
        _scan_pickle_stream(scanner, path, shown, outcome, sniffed.compression, deadline)
    else:
        if sniffed.container == "npy":
            outcome.merge(read_npy_file(path))
        else:
            outcome.merge(read_zip(path, kind))
        if kind in ("pytorch", "numpy"):
            _picklescan_archive(scanner, path, shown, outcome)
    outcome.dangerous.update(_rated_dangerous(scanner, outcome.imports))
    return findings_of(outcome, shown, kind)


def _rated_dangerous(scanner: Any, imports: list[Import]) -> set[str]:
    """Our resolved imports that picklescan's table rates dangerous: critical however they
    were reached (picklescan itself misses STACK_GLOBAL operands from the memo)."""
    table = getattr(scanner, "_unsafe_globals", {})
    rated: set[str] = set()
    for found in {i.found for i in imports if i.found is not None}:
        names = table.get(found.module) if isinstance(table, dict) else None
        listed = names if isinstance(names, (set, frozenset)) else {names}
        if "*" in listed or found.name in listed:
            rated.add(found.dotted)
    return rated


def _picklescan_archive(scanner: Any, path: Path, shown: str, outcome: Outcome) -> None:
    """Zip archives (PyTorch, .npz) and .npy files: picklescan's own reading, for its rating of
    imports. What it cannot parse is left to our reading (model_archives), which reports what
    the loader would fail on: picklescan also tries raw tensor storages that start with the
    byte of a pickle header, which no loader unpickles."""
    with _picklescan_problems():
        try:
            with path.open("rb") as handle:
                found = scanner.scan_bytes(handle, shown, path.suffix.lower() or ".pt")
            outcome.add(found, partial_expected=True)
        except ImportError as exc:
            raise ScanError(f"{TOOL}: cannot scan {shown}: {exc}") from None
        except Exception as exc:  # any failure to read the file is a finding, not a crash
            outcome.problems.append(describe(exc))


def _scan_pickle_stream(
    scanner: Any,
    path: Path,
    shown: str,
    outcome: Outcome,
    compression: str | None,
    deadline: float,
) -> None:
    """A pickle or joblib file, read both ways it may be loaded: as joblib.load reads it (array
    bytes skipped, compressed containers opened) and as pickle.load reads it."""
    try:
        with open_stream(path, compression) as stream:
            split = split_pickles(Tape(stream, deadline, TOOL))
    except ScanError:
        raise
    except Exception as exc:  # unreadable in any way: a finding
        split = Split(problem=describe(exc))
    outcome.imports.extend(split.imports)
    outcome.lies.extend(split.lies)
    if split.problem:
        outcome.problems.append(split.problem)
    with _picklescan_problems() as problems:
        try:
            for stream_bytes in split.streams:
                found = scanner.scan_pickle_bytes(io.BytesIO(stream_bytes), shown, False)
                outcome.add(found)
        except Exception as exc:  # picklescan gave up on it: a finding, not a crash
            problems.append(describe(exc))
    outcome.problems.extend(problems)
    if split.arrays and compression is None:
        # pickle.load would read the array bytes as pickle opcodes: scan that reading too. It
        # stops with a parse error at the first array, which is expected and not a problem.
        with _picklescan_problems(), path.open("rb") as handle:
            try:
                outcome.add(scanner.scan_pickle_bytes(handle, shown), partial_expected=True)
            except Exception as exc:
                outcome.problems.append(f"read as a plain pickle: {describe(exc)}")


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


def _shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when inside it (posix), else absolute."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
