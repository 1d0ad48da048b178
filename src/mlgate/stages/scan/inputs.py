"""What a scan reads besides its targets: paths that must exist, offline OSV data, the waivers
file and the baseline's fingerprints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlgate import evidence as ev
from mlgate import waivers as waiver_rules
from mlgate.errors import MlgateError
from mlgate.stages.baseline import baseline_path
from mlgate.stages.interface import RunContext
from mlgate.stages.scan.config import DEFAULT_WAIVERS, ScanConfig

if TYPE_CHECKING:
    from mlgate.scanners.osv import OsvDatabase


def existing_paths(workdir: Path, paths: list[str], what: str) -> tuple[Path, ...]:
    resolved = []
    for name in paths:
        path = (workdir / name).resolve()
        if not path.exists():
            raise MlgateError(f"{what} {name} does not exist (in {workdir})")
        resolved.append(path)
    return tuple(resolved)


def load_osv_db(workdir: Path, name: str | None) -> OsvDatabase | None:
    if name is None:
        return None
    from mlgate.scanners.osv import OsvDatabase

    return OsvDatabase.load(workdir / name)


def load_waivers(workdir: Path, name: str | None) -> list[waiver_rules.Waiver]:
    if name is None:
        default = workdir / DEFAULT_WAIVERS
        return waiver_rules.load(default) if default.exists() else []
    return waiver_rules.load(workdir / name)


def baseline_fingerprints(config: ScanConfig, context: RunContext) -> dict[str, object]:
    assert config.baseline is not None
    path = baseline_path(config.baseline, "scan", config.working_directory, context.evidence_dir)
    document = ev.read(path)
    if document.stage != "scan" or document.status != "passed":
        raise MlgateError(
            f"{path}: not scan evidence that ran (stage {document.stage}, {document.status})"
        )
    prints = sorted({f.fingerprint for f in document.findings if f.fingerprint})
    return {"source": str(path), "fingerprints": prints}
