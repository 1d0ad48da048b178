"""Nothing loads a model before its files have passed the model scan.

Unpickling a model runs whatever code its pickle names, so every stage that loads a model (the
quality stage in-process, the load stage and `mlgate serve` through the server they start)
asks this module first, with one call at the point just before the model is loaded:

- a scan stage is configured: its evidence in the evidence directory decides (run first when
  it is missing or was made under another config). Error evidence, or model findings the scan
  policy fails, stop the stage. Model files the passing scan did not cover (their digest is not
  among the scan's `model_digests`) are scanned here, so the files loaded are always the files
  judged.
- no scan stage: the model's files (a local path, or the registry version's files, downloaded)
  are scanned here with every registered scanner whose findings are about models, and judged
  with the scan policy's `fail_on.model` threshold (default high).

Before its files are scanned, a model directory whose MLmodel makes MLflow read files outside
it or run code (code_paths, a loader module outside MLflow, a model from code) is refused
(stages.mlmodel_paths), unless the scan policy's `fail_on.model` is "never". A local model that
does not exist is refused, never skipped.

Fail closed: a missing scanning tool, an unreachable registry or a timeout refuse the model,
with the reason. A refusal is one line, "model scan failed: <reason>; <stage> did not load the
model", which the stage turns into its error evidence.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlgate import evidence as ev
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence, Finding
from mlgate.serving.interface import ServeSpec
from mlgate.stages import mlmodel_paths
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext
from mlgate.stages.scan.config import ScanConfig, ScanPolicy
from mlgate.stages.scan.model_digests import files_digest
from mlgate.stages.scan.stage import ScanStage

_REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")
# A URI scheme of two letters or more ("C:\models" is a path).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")
# Files a server command names that are models by their name; others by their first bytes.
_MODEL_SUFFIXES = (
    ".pkl", ".pickle", ".dill", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".npy", ".npz",
    ".keras", ".h5", ".hdf5", ".skops", ".z", ".gz", ".bz2", ".xz", ".lzma", ".zip", ".tar",
)  # fmt: skip
_PICKLE_OR_ZIP = (b"\x80", b"PK\x03\x04")
_DEFAULT_TIMEOUT = 600.0
_SHOWN_FINDINGS = 3
_NOT_LOADED = "did not load the model"


class ModelRefused(MlgateError):
    """`mlgate serve` refuses a model the scan did not pass (a refusal: exit 1)."""

    exit_code = 1


class _Refused(MlgateError):
    """Why the model must not be loaded (the part after "model scan failed: ")."""


def refusal(context: RunContext, stage: str, model: Path) -> str | None:
    """Why `stage` must not load the model whose files are at `model` (a file or a directory
    it is about to load), or None when it may."""
    return _check(context, stage, lambda _scratch: [model])


def served_refusal(context: RunContext, stage: str, *specs: ServeSpec | None) -> str | None:
    """The same for the servers `stage` is about to start: an MLflow model (its local directory
    or the registry/run files, downloaded), a command (the models its arguments name) or a
    container (judged by the scan stage only: its model is inside the image)."""
    starting = [spec for spec in specs if spec is not None and spec.source != "url"]
    if not starting:
        return None  # a server someone else started: mlgate loads no model
    return _check(
        context, stage, lambda scratch: [m for s in starting for m in _served_files(s, scratch)]
    )


def _check(context: RunContext, stage: str, models_of: Callable[[Path], list[Path]]) -> str | None:
    policy = context.scan_policy if isinstance(context.scan_policy, ScanPolicy) else ScanPolicy()
    config = context.scan_config if isinstance(context.scan_config, ScanConfig) else None
    try:
        vouched: set[str] = set()
        if config is not None:
            scan = _scan_evidence(config, context)
            _judge(policy, scan, "the scan stage")
            vouched = set(scan.data.get("model_digests") or [])
        with tempfile.TemporaryDirectory(prefix="mlgate-model-guard-") as scratch:
            for model in models_of(Path(scratch)):
                if not model.exists():  # never skipped: what MLflow finds, the guard did not
                    raise _Refused(f"{model} does not exist")
                # Files MLmodel names outside the directory, or code it runs, no scan covers:
                # refused first, unless the project judges no model ("never": reports only).
                judged = policy.fail_on.model != "never"
                if judged and (escaped := mlmodel_paths.escape(model)):
                    raise _Refused(f"{model.name}: {escaped}")
                if files_digest(model) not in vouched:
                    # No baseline holds these files' findings: new_only cannot apply.
                    own = policy.model_copy(update={"new_only": False})
                    _judge(own, _scan_files(model, config, context), model.name)
    except MlgateError as exc:  # _Refused, or the registry's error: fail closed
        return f"model scan failed: {exc}; {stage} {_NOT_LOADED}"
    except OSError as exc:  # unreadable files cannot be judged: fail closed
        message = " ".join(str(exc).split())[:300]
        return f"model scan failed: cannot read the model's files: {message}; {stage} {_NOT_LOADED}"
    return None


def _scan_evidence(config: ScanConfig, context: RunContext) -> Evidence:
    """The scan stage's evidence made under this config; the scan runs first when there is
    none (its evidence is written, as `mlgate scan` would)."""
    path = ev.evidence_path(context.evidence_dir, ScanStage.name)
    if path.is_file():
        try:
            found = ev.read(path)
        except MlgateError:
            found = None  # unreadable: scan again
        if found is not None and found.provenance.config_digest == context.config_digest:
            return found
    started = ev.now()
    try:
        result = ScanStage().run(config, context)
    except Exception as exc:  # whatever went wrong, the scan did not pass
        result = ev.crashed(ScanStage.name, started, exc, context.config_digest)
    ev.write(result, context.evidence_dir)
    return result


def _scan_files(model: Path, config: ScanConfig | None, context: RunContext) -> Evidence:
    """The model's files scanned by every registered model scanner, as scan evidence (without
    waivers: those belong to a configured scan stage)."""
    from mlgate.scanners import SCANNERS
    from mlgate.scanners.errors import ScanError
    from mlgate.scanners.interface import ScanTargets, fingerprint

    started = ev.now()
    scanners = {n: s for n, s in SCANNERS.items() if "model" in s.sources}
    if not scanners:
        raise _Refused("no model scanner is registered")
    with tempfile.TemporaryDirectory(prefix="mlgate-model-scan-") as scratch:
        targets = ScanTargets(
            workdir=model.parent,
            models=(model,),
            timeout=config.tool_timeout if config is not None else _DEFAULT_TIMEOUT,
            scratch=Path(scratch),
        )
        findings: list[Finding] = []
        for name, scanner in scanners.items():
            try:
                result = scanner.scan(targets)
            except ScanError as exc:
                raise _Refused(f"{model.name}: {exc}") from None
            except Exception as exc:  # a scanner that crashes has not passed the file
                raise _Refused(f"{model.name}: {name} crashed: {type(exc).__name__}") from None
            for found in result.findings:
                # The policy's rule keys findings by fingerprint (waivers, baselines).
                key = found.fingerprint or fingerprint(name, found.id, found.path)
                findings.append(found.model_copy(update={"fingerprint": key}))
    return finished_evidence(
        ScanStage.name,
        context,
        started,
        findings=findings,
        data={"waivers": [], "scanners": list(scanners)},
    )


def _judge(policy: ScanPolicy, scan: Evidence, what: str) -> None:
    """Raise when the scan errored or its model findings fail the policy (the scan stage's
    own rule, on the model findings alone)."""
    if scan.status != "passed":
        raise _Refused(f"{what}: {scan.reason or scan.status}")
    model_only = [f for f in scan.findings if f.source == "model"]
    results = ScanStage().evaluate(policy, scan.model_copy(update={"findings": model_only}))
    rule = next((r for r in results if r.rule == "scan.findings"), results[0])
    if rule.outcome == "pass":
        return
    reason = rule.reason.removeprefix("scan: ")
    worst = sorted(
        (f for f in model_only if not f.waived_by),
        key=lambda f: ("critical", "high", "medium", "low", "info", "unknown").index(f.severity),
    )
    # The worst findings name the problem; the rule above has decided.
    named = "; ".join(
        f"{f.severity} {f.id} in {f.path or '?'}: {f.title or f.message}"[:200]
        for f in worst[:_SHOWN_FINDINGS]
        if f.severity == worst[0].severity
    )
    raise _Refused(f"{what}: {reason}" + (f" ({named})" if named else ""))


def _served_files(spec: ServeSpec, scratch: Path) -> list[Path]:
    """The model files the server of `spec` will load, as far as mlgate can see them."""
    workdir = Path(spec.working_directory)
    if spec.source == "mlflow":
        return [_model_files(spec.model_uri or "", workdir, spec, scratch)]
    if spec.source == "command":
        named: list[Path] = []
        for argument in spec.argv():
            for value in {argument, argument.partition("=")[2]} - {""}:
                if _REGISTERED.fullmatch(value) or value.startswith("runs:/"):
                    named.append(_model_files(value, workdir, spec, scratch))
                elif _is_model_path(workdir / value):
                    named.append((workdir / value).resolve())
        return named
    return []  # container: the image holds the model; the scan stage judges it


def _is_model_path(path: Path) -> bool:
    try:
        if path.is_dir():
            return (path / "MLmodel").is_file()
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return path.suffix.lower() in _MODEL_SUFFIXES or head.startswith(_PICKLE_OR_ZIP)


def _model_files(uri: str, workdir: Path, spec: ServeSpec, scratch: Path) -> Path:
    """A local model as it is; a registry version or run artifact downloaded into `scratch`,
    the files `mlflow models serve` loads."""
    if uri.startswith("file:"):  # file:/abs, file://localhost/abs, file:///my%20model
        return (workdir / unquote(urlsplit(uri).path)).resolve()
    if not _SCHEME.match(uri):
        return (workdir / uri).resolve()
    from mlgate.registry.mlflow_registry import Registry, RegistryError, download_artifacts

    registry = Registry.connect(spec.env.get("MLFLOW_TRACKING_URI"))
    destination = scratch / f"model-{len(list(scratch.iterdir()))}"
    try:
        match = _REGISTERED.fullmatch(uri)
        if match is None:
            local = download_artifacts(registry.uri, artifact_uri=uri, dst_path=str(destination))
        else:
            name, alias, number = match.group("name", "alias", "version")
            if alias is not None:
                number = registry.alias(name, alias)
                if number is None:
                    raise _Refused(f"alias {alias} of model {name} is not set ({uri})")
            local = str(registry.download_version(name, number, destination))
    except RegistryError as exc:
        raise _Refused(f"cannot download {uri} to scan it: {exc}") from None
    except MlgateError:
        raise
    except Exception as exc:  # store and transport errors alike: the files cannot be scanned
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise _Refused(f"cannot download {uri} to scan it: {message}") from None
    return Path(local)
