"""A config is validated with the stages it names only: what the gate's path imports, and
what the digests cover."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate import config
from mlgate.errors import ConfigError
from mlgate.stages.scan.config import ScanPolicy

SRC = Path(config.__file__).parents[1]

# What `mlgate gate` and `mlgate report` import before they judge or deliver anything, for a
# config naming only the tests stage.
_PROBE = """
import json, sys
from mlgate import config, evidence, policy, verdict
from mlgate.report import model, sinks
cfg = config.parse({"stages": {"tests": {}}, "policy": {"tests": {"max_failures": 1}}})
cfg.digest, cfg.policy_digest, cfg.enabled_stages, cfg.stage_config("tests")
print(json.dumps(sorted(sys.modules)))
"""


def _imported_by(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(done.stdout))


def test_a_config_naming_one_stage_imports_no_other_stage() -> None:
    modules = _imported_by(_PROBE)
    stage_modules = {m for m in modules if m.startswith("mlgate.stages.")}
    others = ["bench", "load", "scan", "drift", "probe", "quality"]
    assert not [m for m in stage_modules if m.split(".")[2] in others], stage_modules
    # PyGithub (and requests, jwt, cryptography) only where a request is made; rich only
    # where the terminal sink prints.
    heavy = {"numpy", "pandas", "scipy", "mlflow", "github", "requests", "jwt", "rich"}
    assert not heavy & {m.split(".")[0] for m in modules}


def test_registry_resolves_every_stage() -> None:
    from mlgate.stages import REGISTRY, STAGES, config_model, policy_model

    for name in REGISTRY:
        stage = STAGES[name]
        assert stage.name == name
        assert stage.config_model is config_model(name)
        assert stage.policy_model is policy_model(name)
    assert list(STAGES) == list(REGISTRY) and len(STAGES) == len(REGISTRY)
    assert "nosuch" not in STAGES and STAGES.get("nosuch") is None


def test_unnamed_stages_have_their_default_policy() -> None:
    cfg = config.parse({"stages": {"tests": {}}})
    assert cfg.stage_policy("scan") == ScanPolicy()
    assert cfg.stage_config("scan") is None
    assert cfg.enabled_stages == ["tests"]


def test_named_stages_keep_registry_order() -> None:
    cfg = config.parse({"policy": {"quality": {}}, "stages": {"load": None, "tests": {}}})
    assert list(cfg.model_dump()["policy"]) == ["tests", "load", "quality"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"policy": {"nosuch": {}}}, "policy.nosuch: unknown key"),
        ({"stages": {"tests": {}, "nosuch": {}}}, "stages.nosuch: unknown key"),
        ({"stages": ["tests"]}, "stages: Input should be a valid dictionary"),
        ({"policy": {"tests": {"max_failures": -1}}}, "policy.tests.max_failures:"),
    ],
)
def test_bad_sections_are_still_refused(document: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        config.parse(document)


def test_digest_covers_the_resolved_sections_of_named_stages() -> None:
    bare = config.parse({"stages": {"tests": {}}})
    spelled = config.parse({"stages": {"tests": {}}, "policy": {"tests": {"max_failures": 0}}})
    stricter = config.parse({"stages": {"tests": {}}, "policy": {"tests": {"min_tests": 5}}})
    # A default written out is the same policy: the digests hash resolved sections.
    assert bare.digest == spelled.digest and bare.policy_digest == spelled.policy_digest
    assert bare.policy_digest != stricter.policy_digest
    dumped = bare._judged_document()
    assert set(dumped["stages"]) == {"tests"} and set(dumped["policy"]) == {"tests"}


def test_digest_covers_the_scan_policy_a_promotion_applies() -> None:
    # require_model_scan judges a bundle's scan evidence by policy.scan, named or not.
    plain = config.parse({"promotion": {"require_model_scan": True}})
    lax = config.parse(
        {"promotion": {"require_model_scan": True}, "policy": {"scan": {"only_fixable": True}}}
    )
    assert "scan" in plain._judged_document()["policy"]
    assert plain.policy_digest != lax.policy_digest
