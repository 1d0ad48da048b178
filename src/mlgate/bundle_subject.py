"""Is the evidence about the bundled model version? A bundle binds a verdict to one version, so
the stages that judged a model must have judged exactly that version's files.

- the quality stage's candidate (`data["candidate"]`) and the load stage's served candidate
  (`data["candidate_model"]`), where recorded, must be the bundled registered model and version
  with the same files digest;
- the scan stage's registry targets (`data["model_targets"]`), where recorded, must include it;
- and at least one of them must be about it: a version no stage evaluated gets no bundle.
"""

from __future__ import annotations

from mlgate import model_identity
from mlgate.evidence import Evidence
from mlgate.model_identity import ModelIdentity

# Stage -> the data key of the one model it judged.
CANDIDATE_KEYS = {"quality": "candidate", "load": "candidate_model"}
SCAN_STAGE, SCAN_TARGETS_KEY = "scan", "model_targets"


def evaluated_by(evidence: dict[str, Evidence]) -> dict[str, list[ModelIdentity]]:
    """Per stage, the registry models its evidence says it evaluated."""
    found: dict[str, list[ModelIdentity]] = {}
    for stage, key in CANDIDATE_KEYS.items():
        if stage in evidence:
            identity = model_identity.read(evidence[stage].data.get(key))
            if identity is not None:
                found[stage] = [identity]
    if SCAN_STAGE in evidence:
        targets = model_identity.read_all(evidence[SCAN_STAGE].data.get(SCAN_TARGETS_KEY))
        if targets:
            found[SCAN_STAGE] = targets
    return found


def mismatch(evidence: dict[str, Evidence], name: str, version: str, digest: str) -> str | None:
    """Why the evidence is not about models:/name/version with files `digest`; None when it is."""
    wanted = f"models:/{name}/{version} ({digest})"
    evaluated = evaluated_by(evidence)
    for stage, identities in evaluated.items():
        if any(i.is_version(name, version, digest) for i in identities):
            continue
        if stage == SCAN_STAGE:
            scanned = ", ".join(i.shown for i in identities)
            return f"the scan stage scanned {scanned}, not {wanted}"
        (identity,) = identities
        if (identity.registered_model, identity.version) == (name, version):
            return (
                f"the {stage} stage evaluated files {identity.digest} of models:/{name}/"
                f"{version}, which are {digest} now: gate the version again"
            )
        return f"the {stage} stage evaluated {identity.shown}, not {wanted}"
    if not evaluated:
        return (
            f"no stage's evidence evaluated {wanted}: the quality stage (candidate), the load "
            "stage (serve.model_uri) or the scan stage (models) must name it as models:/NAME@ALIAS "
            "or models:/NAME/VERSION"
        )
    return None
