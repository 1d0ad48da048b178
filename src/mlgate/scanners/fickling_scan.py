"""The second model-file engine: fickling's symbolic pickle interpreter, judged by an allow list.

It works differently from picklescan (model_files): the model files are found by content and
split into pickle streams by a reader of its own (pickle_streams), and fickling interprets each
stream the way the unpickler would, so a global reached through the memo, DUP or a nested
call is resolved, not lost. Every global it finds is judged by pickle_allowlist: outside the
allow list is `high`, a known payload module or builtin is `critical`, a global fickling cannot
resolve to a name is `critical`, and a stream that cannot be read to its end is `high`.

fickling's own verdict is not used: it rates every benign scikit-learn pickle "likely unsafe"
(any import outside the standard library) and numpy's random-state helpers "likely overtly
malicious"; only its interpreter and its resource-exhaustion check are. The files are read,
never unpickled or imported; fickling is pure Python and makes no network calls.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from mlgate.evidence import Finding
from mlgate.scanners import pickle_payloads, tool_output
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import ScanResult, ScanTargets
from mlgate.scanners.model_data_files import is_data_file
from mlgate.scanners.model_engine import (
    UNSCANNABLE,
    ModelEngine,
    check_deadline,
    import_engine,
    model_finding,
)
from mlgate.scanners.pickle_streams import (
    PickleStream,
    Unreadable,
    classified,
    files_under,
    message_line,
    pickle_streams,
)

TOOL = "fickling"
NOT_ALLOWED = "pickle-global-not-allowed"
DANGEROUS = "dangerous-pickle-global"
UNRESOLVED = "unresolvable-pickle-global"
EXHAUSTION = "pickle-resource-exhaustion"
# fickling's names for a STACK_GLOBAL operand it could not resolve to a constant.
_PLACEHOLDER = re.compile(r"_var\d+|_malformed_(module|attr)\w*")


class FicklingScanner(ModelEngine):
    name: ClassVar[str] = TOOL

    def scan(self, targets: ScanTargets) -> ScanResult:
        fickle = import_engine(TOOL, "fickling.fickle", "pip install 'mlgate[scan]'")
        deadline = time.monotonic() + targets.timeout
        result = ScanResult(tool_versions={TOOL: metadata.version("fickling")})
        scanned: dict[str, list[str]] = {}
        for target in targets.models:
            path = target if target.is_absolute() else targets.workdir / target
            if not path.exists():
                raise ScanError(f"{TOOL}: model path does not exist: {path}")
            for file in files_under(path):
                check_deadline(TOOL, deadline, targets.timeout)
                shown = tool_output.shown(file, targets.workdir)
                findings, streams = _scan_file(fickle.Pickled, file, shown, deadline)
                result.findings.extend(findings)
                if streams:
                    scanned[shown] = streams
        result.data = {"files": scanned}
        return result


def _scan_file(
    pickled_type: Any, path: Path, shown: str, deadline: float
) -> tuple[list[Finding], list[str]]:
    try:
        streams = pickle_streams(path, deadline)
    except (Unreadable, OSError) as exc:
        return [_unscannable(shown, str(exc))], ["(unreadable)"]
    except Exception as exc:  # the reader broke on this file: unread, so not clean
        return [_unscannable(shown, f"the reader failed: {message_line(exc)}")], ["(unreadable)"]
    if not streams and not classified(path) and not is_data_file(path):
        # A loader may be pointed at any file (MLmodel's pickled_model): not skipped.
        problem = "an unrecognised file, neither a model format nor data-only or text"
        return [_unscannable(shown, problem)], ["(unrecognised)"]
    findings: dict[str, Finding] = {}
    for stream in streams:
        for found in _scan_stream(pickled_type, stream, shown):
            findings.setdefault(found.fingerprint or found.id, found)
    return list(findings.values()), [s.where or "(whole file)" for s in streams]


def _scan_stream(pickled_type: Any, stream: PickleStream, shown: str) -> list[Finding]:
    where = f"{shown}:{stream.where}" if stream.where else shown
    warnings = io.StringIO()
    try:
        # fickling prints its warnings (an unresolvable STACK_GLOBAL) to stdout: keep them.
        with contextlib.redirect_stdout(warnings):
            pickled = pickled_type.load(stream.data)
            imports = [
                (str(node.module or ""), alias.name)
                if hasattr(node, "module")
                else (alias.name.rpartition(".")[0], alias.name.rpartition(".")[2])
                for node in pickled.properties.imports
                for alias in node.names
            ]
            exhausted = bool(pickled.has_resource_exhaustion)
            broken = bool(pickled.has_interpretation_error or pickled.has_invalid_opcode)
    except Exception as exc:
        return [_unscannable(shown, f"{where}: fickling cannot interpret it: {message_line(exc)}")]
    found = [_judged(module, name, shown, where) for module, name in sorted(set(imports))]
    if "STACK_GLOBAL called with invalid types" in warnings.getvalue():
        found.append(
            model_finding(
                TOOL,
                UNRESOLVED,
                "critical",
                shown,
                f"{where}: a global is imported from names computed at load time, which "
                "no scanner can check: loading it can run arbitrary code",
                title="Unresolvable global in a pickle",
                key=where,
            )
        )
    if exhausted:
        found.append(
            model_finding(
                TOOL,
                EXHAUSTION,
                "high",
                shown,
                f"{where}: interpreting it exceeded fickling's resource limits (an expansion "
                "attack, or a model too large to check)",
                title="Pickle exceeds resource limits",
                key=where,
            )
        )
    if broken:
        found.append(_unscannable(shown, f"{where}: malformed opcode sequence"))
    return [f for f in found if f is not None]


def _judged(module: str, name: str, shown: str, where: str) -> Finding | None:
    dotted = f"{module}.{name}" if module else name
    if _PLACEHOLDER.fullmatch(module) or _PLACEHOLDER.fullmatch(name):
        return model_finding(
            TOOL,
            UNRESOLVED,
            "critical",
            shown,
            f"{where} imports {dotted}, a global fickling could not resolve to a constant "
            "name: loading it can run arbitrary code",
            title="Unresolvable global in a pickle",
            key=dotted,
        )
    verdict = pickle_payloads.judge(module, name)
    if verdict == "allowed":
        return None
    if verdict == "dangerous":
        return model_finding(
            TOOL,
            DANGEROUS,
            "critical",
            shown,
            f"{where} imports {dotted} when unpickled: loading it can run arbitrary code",
            title="Dangerous global in a pickle",
            key=dotted,
            finding_id=f"fickling:{dotted}",
        )
    return model_finding(
        TOOL,
        NOT_ALLOWED,
        "high",
        shown,
        f"{where} imports {dotted}, which is not on the allow list of what model libraries "
        "pickle: review it before loading, then waive it or save the model in a safe format",
        title="Pickle global outside the allow list",
        key=dotted,
        finding_id=f"fickling:{dotted}",
    )


def _unscannable(shown: str, problem: str) -> Finding:
    return model_finding(
        TOOL,
        UNSCANNABLE,
        "high",
        shown,
        f"{shown} could not be fully scanned by fickling: {problem}",
        title="Model file not fully scanned",
        key=problem,
    )
