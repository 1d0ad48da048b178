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
  critical, and whatever it cannot parse is reported.
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from mlgate.evidence import Finding, Severity
from mlgate.scanners import pickle_allowlist
from mlgate.scanners.interface import ScanError, Scanner, ScanResult, ScanTargets, Source
from mlgate.scanners.interface import fingerprint as make_fingerprint
from mlgate.scanners.joblib_reader import Split, Tape, split_pickles
from mlgate.scanners.model_archives import Reading, read_npy_file, read_zip
from mlgate.scanners.model_sniff import open_stream
from mlgate.scanners.model_targets import ModelFile, target_files
from mlgate.scanners.pickle_machine import Import, describe

TOOL = "picklescan"
SOURCE: Source = "model"
UNSAFE_IMPORT = "unsafe-pickle-import"
NOT_ALLOWED = "model-import-not-allowed"
UNRESOLVED = "unresolved-pickle-import"
MALFORMED = "malformed-model"
UNSCANNABLE = "unscannable-model"
NO_MODEL_FILE = "no-model-file"
UNSAFE_FORMAT = "unsafe-format"
KERAS_LAMBDA = "keras-lambda-layer"

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
        chosen = target_files(targets.models, targets.workdir, TOOL)
        result = ScanResult(tool_versions={TOOL: metadata.version("picklescan")})
        scanned: dict[str, str] = {}
        safe: list[str] = []
        for target in chosen:
            safe.extend(_shown(path, targets.workdir) for path in target.safe)
            if not target.files and not target.safe:
                result.findings.append(_no_model_file(_shown(target.target, targets.workdir)))
            for model in target.files:
                if time.monotonic() > deadline:
                    raise ScanError(f"{TOOL}: timed out after {targets.timeout:g} s")
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


@dataclass
class _Outcome:
    """What our reading and picklescan made of one file."""

    imports: list[Import] = field(default_factory=list)  # our walk: every global imported
    dangerous: set[str] = field(default_factory=set)  # picklescan's rating
    problems: list[str] = field(default_factory=list)
    lies: list[str] = field(default_factory=list)  # states that desynchronise readers
    lambda_layers: list[str] = field(default_factory=list)
    pickled: bool = False  # the file holds pickle data

    def add(self, found: Any, *, partial_expected: bool = False) -> None:
        """Merge a picklescan ScanResult."""
        for imported in found.globals:
            self.pickled = True
            if imported.safety.value == "dangerous":
                self.dangerous.add(f"{imported.module}.{imported.name}")
        if found.scan_err and not partial_expected:
            self.problems.append("picklescan could not parse all of it")

    def merge(self, reading: Reading) -> None:
        self.imports.extend(reading.imports)
        self.problems.extend(reading.problems)
        self.lambda_layers.extend(reading.lambda_layers)
        self.pickled |= reading.pickled


def _scan_file(scanner: Any, model: ModelFile, shown: str, deadline: float) -> list[Finding]:
    path, kind, sniffed = model.path, model.kind, model.sniffed
    # Pickle, joblib and PyTorch files are pickles whatever their content; numpy files only
    # with object arrays.
    outcome = _Outcome(pickled=kind in ("pickle", "joblib", "pytorch"))
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
    return _findings(outcome, shown, kind)


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


def _picklescan_archive(scanner: Any, path: Path, shown: str, outcome: _Outcome) -> None:
    """Zip archives (PyTorch, .npz) and .npy files: picklescan's own reading."""
    with _picklescan_problems() as problems:
        try:
            with path.open("rb") as handle:
                outcome.add(scanner.scan_bytes(handle, shown, path.suffix.lower() or ".pt"))
        except ImportError as exc:
            raise ScanError(f"{TOOL}: cannot scan {shown}: {exc}") from None
        except Exception as exc:  # any failure to read the file is a finding, not a crash
            problems.append(describe(exc))
    outcome.problems.extend(problems)


def _scan_pickle_stream(
    scanner: Any,
    path: Path,
    shown: str,
    outcome: _Outcome,
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


# --- findings ------------------------------------------------------------------------------


def _findings(outcome: _Outcome, shown: str, kind: str) -> list[Finding]:
    prefix = "skops" if kind == "skops" else "pickle"
    findings = [
        _finding(
            f"{prefix}:{dotted}",
            "critical",
            UNSAFE_IMPORT,
            shown,
            f"{shown} imports {dotted} when unpickled: loading it can run arbitrary code",
            title="Dangerous import in a pickle",
            key=dotted,
        )
        for dotted in sorted(outcome.dangerous)
    ]
    findings.extend(_import_findings(outcome, shown, kind))
    if outcome.lies:
        findings.append(
            _finding(
                MALFORMED,
                "critical",
                MALFORMED,
                shown,
                f"{shown} is malformed: " + "; ".join(dict.fromkeys(outcome.lies)),
                title="Model file crafted to read differently",
                detail="NumPy never writes such a state: joblib.load and a scanner would read "
                "different bytes. Rebuild the file from the model.",
            )
        )
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
    findings.extend(
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
        for layer in outcome.lambda_layers
    )
    if outcome.pickled and kind in _ADVICE:
        label, advice = _ADVICE[kind]
        listed = sorted({i.found.dotted for i in outcome.imports if i.found is not None})
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
                detail=f"imports: {imports}" if listed else None,
                key=kind,
            )
        )
    return findings


def _import_findings(outcome: _Outcome, shown: str, kind: str) -> list[Finding]:
    """High for each import outside the allow list (unless picklescan already made it
    critical), critical for imports whose name only exists at load time."""
    prefix = "skops" if kind == "skops" else "pickle"
    refused = sorted(
        {
            i.found.dotted
            for i in outcome.imports
            if i.found is not None
            and not pickle_allowlist.allowed(i.found.module, i.found.name)
            and i.found.dotted not in outcome.dangerous
        }
    )
    findings = [
        _finding(
            f"{prefix}:{dotted}",
            "high",
            NOT_ALLOWED,
            shown,
            f"{shown} imports {dotted} when loaded, which is not on the allow list of what "
            "model libraries pickle: loading it may run code",
            title="Import outside the model allow list",
            detail="Review what it does when called with data from the file; waive it if it "
            "is harmless, or save the model without it.",
            key=dotted,
        )
        for dotted in refused
    ]
    unresolved = [i for i in outcome.imports if i.found is None]
    if unresolved:
        where = ", ".join(f"{i.opcode} at byte {i.position}" for i in unresolved[:5])
        findings.append(
            _finding(
                "pickle:unresolved-import",
                "critical",
                UNRESOLVED,
                shown,
                f"{shown} imports a global whose name is computed when it is loaded ({where}): "
                "nothing can say what it runs",
                title="Import that cannot be resolved",
            )
        )
    return findings


def _no_model_file(shown: str) -> Finding:
    return _finding(
        NO_MODEL_FILE,
        "high",
        NO_MODEL_FILE,
        shown,
        f"{shown} holds no model file mlgate can recognise: nothing was scanned",
        title="No model file to scan",
        detail="Point `models:` at the model files (pickle, joblib, PyTorch, skops, Keras, "
        "NumPy, safetensors, ONNX...) or the directory that holds them.",
    )


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


def _shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when inside it (posix), else absolute."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
