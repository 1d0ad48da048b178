"""The findings of the model-file scanner, from what its reading of one file found (an
Outcome): one rule each, with the severities model_files' docstring explains."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlgate.evidence import Finding
from mlgate.scanners import pickle_allowlist
from mlgate.scanners.model_archives import Reading
from mlgate.scanners.model_engine import UNSCANNABLE, model_finding
from mlgate.scanners.pickle_machine import Import

TOOL = "picklescan"
UNSAFE_IMPORT = "unsafe-pickle-import"
NOT_ALLOWED = "model-import-not-allowed"
UNRESOLVED = "unresolved-pickle-import"
MALFORMED = "malformed-model"
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


@dataclass
class Outcome:
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


def findings_of(outcome: Outcome, shown: str, kind: str) -> list[Finding]:
    prefix = "skops" if kind == "skops" else "pickle"
    findings = [
        model_finding(
            TOOL,
            UNSAFE_IMPORT,
            "critical",
            shown,
            f"{shown} imports {dotted} when unpickled: loading it can run arbitrary code",
            title="Dangerous import in a pickle",
            finding_id=f"{prefix}:{dotted}",
            key=dotted,
        )
        for dotted in sorted(outcome.dangerous)
    ]
    findings.extend(_import_findings(outcome, shown, kind))
    if outcome.lies:
        findings.append(
            model_finding(
                TOOL,
                MALFORMED,
                "critical",
                shown,
                f"{shown} is malformed: " + "; ".join(dict.fromkeys(outcome.lies)),
                title="Model file crafted to read differently",
                finding_id=MALFORMED,
                detail="NumPy never writes such a state: joblib.load and a scanner would read "
                "different bytes. Rebuild the file from the model.",
            )
        )
    if outcome.problems:
        problem = "; ".join(dict.fromkeys(outcome.problems))  # in order, without repeats
        findings.append(
            model_finding(
                TOOL,
                UNSCANNABLE,
                "high",
                shown,
                f"{shown} could not be fully scanned: {problem}",
                title="Model file not fully scanned",
                finding_id=UNSCANNABLE,
                detail="What a scanner cannot read may hide anything: fix, replace or waive it.",
            )
        )
    findings.extend(
        model_finding(
            TOOL,
            KERAS_LAMBDA,
            "high",
            shown,
            f"{shown} has a Keras Lambda layer {layer!r}: its Python code runs when the model "
            "is loaded with safe_mode=False or by an older Keras",
            title="Keras Lambda layer",
            finding_id="keras:Lambda",
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
            model_finding(
                TOOL,
                UNSAFE_FORMAT,
                "low",
                shown,
                f"{shown} is {label}, which can run code when loaded: {advice}",
                title="Pickle format where a safe format exists",
                finding_id=f"{UNSAFE_FORMAT}:{kind}",
                detail=f"imports: {imports}" if listed else None,
                key=kind,
            )
        )
    return findings


def _import_findings(outcome: Outcome, shown: str, kind: str) -> list[Finding]:
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
        model_finding(
            TOOL,
            NOT_ALLOWED,
            "high",
            shown,
            f"{shown} imports {dotted} when loaded, which is not on the allow list of what "
            "model libraries pickle: loading it may run code",
            title="Import outside the model allow list",
            finding_id=f"{prefix}:{dotted}",
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
            model_finding(
                TOOL,
                UNRESOLVED,
                "critical",
                shown,
                f"{shown} imports a global whose name is computed when it is loaded ({where}): "
                "nothing can say what it runs",
                title="Import that cannot be resolved",
                finding_id="pickle:unresolved-import",
            )
        )
    return findings


def no_model_file(shown: str) -> Finding:
    return model_finding(
        TOOL,
        NO_MODEL_FILE,
        "high",
        shown,
        f"{shown} holds no model file mlgate can recognise: nothing was scanned",
        title="No model file to scan",
        finding_id=NO_MODEL_FILE,
        detail="Point `models:` at the model files (pickle, joblib, PyTorch, skops, Keras, "
        "NumPy, safetensors, ONNX...) or the directory that holds them.",
    )
