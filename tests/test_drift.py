"""The drift stage on generated data (fixed seeds), and its retraining trigger against the fake
GitHub (every request checked against GitHub's OpenAPI description)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlgate import evidence as ev
from mlgate.github.context import GitHubContext
from mlgate.stages.drift.config import (
    MAX_WORKFLOW_INPUTS_CHARS,
    DispatchTarget,
    DriftConfig,
    DriftPolicy,
)
from mlgate.stages.drift.dispatch import DispatchError, dispatch
from mlgate.stages.drift.stage import DriftStage, as_json
from mlgate.stages.drift.statistics import PSI_EPSILON
from mlgate.stages.interface import RunContext
from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull

STAGE = DriftStage()
ROWS = 3000
REPO = "octo/model"
TOKEN = "ghs_app_token"


def frame(
    seed: int, *, shift: float = 0.0, colors: tuple[float, float, float] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(ROWS) + seed * ROWS,
            "age": rng.normal(40 + shift, 10, ROWS),
            "income": rng.lognormal(10, 0.5, ROWS),
            "children": rng.integers(0, 4, ROWS),
            "color": rng.choice(["red", "green", "blue"], ROWS, p=list(colors)),
            "member": rng.random(ROWS) < 0.3,
        }
    )


def write(path: Path, data: pd.DataFrame) -> str:
    if path.suffix == ".parquet":
        data.to_parquet(path)
    else:
        data.to_csv(path, index=False)
    return str(path)


def run(tmp_path: Path, reference: str, current: str, **config: object) -> ev.Evidence:
    settings: dict[str, object] = {"reference": reference, "current": current, "exclude": ["id"]}
    evidence = STAGE.run(
        DriftConfig.model_validate(settings | config), RunContext(tmp_path / "ev", None)
    )
    # Every document the stage makes passes the evidence schema on the way back in.
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence
    return evidence


def drifted(evidence: ev.Evidence) -> set[str]:
    return {f["feature"] for f in as_json(evidence)["features"] if f["drifted"]}


@pytest.fixture
def shifted(tmp_path: Path) -> ev.Evidence:
    """age moved by half a standard deviation, color's shares reversed; the rest as before."""
    reference = write(tmp_path / "reference.csv", frame(1))
    current = write(tmp_path / "current.csv", frame(2, shift=5, colors=(0.2, 0.3, 0.5)))
    return run(tmp_path, reference, current)


def test_the_shifted_numeric_and_categorical_features_are_exactly_the_drifted_ones(
    tmp_path: Path, shifted: ev.Evidence
) -> None:
    assert shifted.status == "passed", shifted.reason
    assert drifted(shifted) == {"age", "color"}
    report = as_json(shifted)
    assert [f["feature"] for f in report["features"]] == [
        "age",
        "income",
        "children",
        "color",
        "member",
    ]
    for entry in report["features"]:
        assert set(entry) == {"feature", "psi", "p_value", "drifted"}
        assert math.isfinite(entry["psi"]) and 0 <= entry["p_value"] <= 1
    json.dumps(report, allow_nan=False)
    by_name = {e["feature"]: e for e in shifted.data["features"]}
    assert by_name["age"]["kind"] == "numeric" and by_name["age"]["test"] == "ks"
    assert by_name["color"]["kind"] == "categorical" and by_name["color"]["test"] == "chi2"
    assert by_name["member"]["kind"] == "categorical"  # booleans are categories
    assert by_name["children"]["bins"] == 4 + 2  # one per value, anything else, missing
    assert by_name["age"]["bins"] == 10 + 1  # quantile bins and missing
    assert by_name["color"]["psi"] > 0.2
    # Both files are pinned by digest and row count.
    for role in ("reference", "current"):
        entry = shifted.data[role]
        assert entry["rows"] == ROWS
        assert entry["sha256"] == ev.sha256_file(tmp_path / f"{role}.csv")
    assert [a.sha256 for a in shifted.artifacts] == [
        shifted.data["reference"]["sha256"],
        shifted.data["current"]["sha256"],
    ]
    assert shifted.metrics["reference_rows"] == shifted.metrics["current_rows"] == ROWS
    assert shifted.metrics["drifted_features"] == 2
    assert {f.id for f in shifted.findings} == {"drift:age", "drift:color"}
    assert STAGE.summary(shifted).startswith("5 features, 2 drifted (")


def test_the_policy_fails_naming_the_drifted_features(shifted: ev.Evidence) -> None:
    [result] = STAGE.evaluate(DriftPolicy(), shifted)
    assert result.rule == "drift.max_drifted_features" and result.outcome == "fail"
    assert "2 of 5 features drifted" in result.reason
    assert "color (PSI" in result.reason and "age (PSI" in result.reason
    assert "income" not in result.reason
    [result] = STAGE.evaluate(DriftPolicy(max_drifted_features=2), shifted)
    assert result.outcome == "pass"


def test_parquet_data_is_read_as_parquet_whatever_its_name(tmp_path: Path) -> None:
    """Drift and quality read data with one reader: Parquet is known by its magic bytes, as
    quality always did (drift read a Parquet file without its suffix as CSV, and failed)."""
    reference = write(tmp_path / "reference.csv", frame(1))
    frame(3).to_parquet(tmp_path / "current.data")
    evidence = run(tmp_path, reference, str(tmp_path / "current.data"))
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["current"]["format"] == "parquet"
    assert drifted(evidence) == set()


def test_identical_distributions_drift_nowhere(tmp_path: Path) -> None:
    reference = write(tmp_path / "reference.csv", frame(1))
    evidence = run(tmp_path, reference, write(tmp_path / "current.parquet", frame(3)))
    assert evidence.status == "passed", evidence.reason
    assert drifted(evidence) == set()
    assert evidence.data["current"]["format"] == "parquet"
    [result] = STAGE.evaluate(DriftPolicy(), evidence)
    assert result.outcome == "pass"
    assert result.reason == "drift: none of 5 features drifted, at most 0 allowed"
    # A file against itself: nothing moved at all.
    same = run(tmp_path, reference, reference)
    for entry in as_json(same)["features"]:
        assert entry["psi"] == pytest.approx(0, abs=1e-12)
        assert entry["p_value"] == pytest.approx(1)


def test_psi_is_the_textbook_formula_with_empty_bins_raised_to_epsilon(tmp_path: Path) -> None:
    reference = write(tmp_path / "r.csv", pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50}))
    current = write(tmp_path / "c.csv", pd.DataFrame({"c": ["a"] * 100}))
    evidence = run(tmp_path, reference, current, exclude=[])
    [entry] = evidence.data["features"]
    expected = (1 - 0.5) * math.log(1 / 0.5) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5)
    assert entry["psi"] == pytest.approx(expected)
    assert entry["drifted"] is True


def test_categories_seen_on_one_side_only_are_compared(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"plan": rng.choice(["free", "pro", "legacy"], ROWS)})
    current = pd.DataFrame({"plan": rng.choice(["free", "pro", "team"], ROWS)})
    evidence = run(
        tmp_path, write(tmp_path / "r.csv", reference), write(tmp_path / "c.csv", current)
    )
    [entry] = evidence.data["features"]
    assert entry["bins"] == 4 and entry["drifted"] is True
    assert math.isfinite(entry["psi"]) and entry["p_value"] < 1e-10


def test_a_numeric_column_listed_as_categorical_compares_by_value(tmp_path: Path) -> None:
    reference = pd.DataFrame({"zip": [10115, 10117, 20095] * 100})
    current = pd.DataFrame({"zip": [10115.0, 10117.0, 20095.0, None] * 75})  # read as float
    evidence = run(
        tmp_path,
        write(tmp_path / "r.csv", reference),
        write(tmp_path / "c.csv", current),
        categorical=["zip"],
    )
    [entry] = evidence.data["features"]
    assert entry["kind"] == "categorical"
    assert entry["bins"] == 4  # the three codes and missing, not 10115 and 10115.0
    assert entry["current_missing"] == 75


def test_missing_values_count_as_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"x": rng.normal(0, 1, ROWS), "y": rng.normal(0, 1, ROWS)})
    current = reference.sample(frac=1, random_state=7).reset_index(drop=True)
    current.loc[: ROWS // 3, "x"] = np.nan  # a third of x went missing
    current["y"] = np.nan  # y is gone entirely
    evidence = run(
        tmp_path, write(tmp_path / "r.csv", reference), write(tmp_path / "c.csv", current)
    )
    by_name = {e["feature"]: e for e in evidence.data["features"]}
    assert by_name["x"]["drifted"] and by_name["x"]["psi"] > 0.2
    assert by_name["x"]["current_missing"] == ROWS // 3 + 1
    assert by_name["y"]["drifted"] and by_name["y"]["p_value"] < 1e-10


def test_p_values_are_adjusted_across_features_unless_told_otherwise(
    tmp_path: Path, shifted: ev.Evidence
) -> None:
    for entry in shifted.data["features"]:
        assert entry["p_value"] >= entry["p_value_raw"]
    assert shifted.data["settings"]["p_adjust"] == "bh"
    reference, current = shifted.data["reference"]["path"], shifted.data["current"]["path"]
    raw = run(tmp_path, reference, current, p_adjust="none")
    for entry in raw.data["features"]:
        assert entry["p_value"] == entry["p_value_raw"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[dict[str, object], str]]:
    good = write(tmp_path / "good.csv", frame(1).head(200))
    fewer = write(tmp_path / "fewer.csv", frame(2).head(200).drop(columns=["age"]))
    extra = write(tmp_path / "extra.csv", frame(2).head(200).assign(score=1.0))
    text = write(tmp_path / "text.csv", frame(2).head(200).assign(age="unknown"))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("age,income\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    missing = str(tmp_path / "missing.csv")
    return {
        "missing column": ({"reference": good, "current": fewer}, "only in the reference: 'age'"),
        "extra column": ({"reference": good, "current": extra}, "only in the current file"),
        "listed feature": (
            {"reference": good, "current": fewer, "features": ["age"]},
            "feature 'age' is not a column of the current file",
        ),
        "missing file": ({"reference": missing, "current": good}, "does not exist"),
        "empty file": ({"reference": good, "current": str(tmp_path / "empty.csv")}, "is empty"),
        "no rows": ({"reference": str(tmp_path / "header.csv"), "current": good}, "has no rows"),
        "not parquet": (
            {"reference": good, "current": str(tmp_path / "broken.parquet")},
            "cannot read current",
        ),
        "type changed": ({"reference": good, "current": text}, "is numeric in the reference"),
        "all excluded": (
            {"reference": good, "current": good, "exclude": list(frame(1).columns)},
            "no column is left",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "extra column",
        "listed feature",
        "missing file",
        "empty file",
        "no rows",
        "not parquet",
        "type changed",
        "all excluded",
    ],
)
def test_bad_input_is_error_evidence_with_one_reason(tmp_path: Path, case: str) -> None:
    config, message = _bad_inputs(tmp_path)[case]
    evidence = STAGE.run(
        DriftConfig.model_validate({"exclude": ["id"]} | config),
        RunContext(tmp_path / "ev", None),
    )
    assert evidence.status == "error"
    assert evidence.reason is not None and message in evidence.reason
    assert "\n" not in evidence.reason
    assert STAGE.summary(evidence) == f"error: {evidence.reason}"
    assert as_json(evidence) == {"features": []}
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence


def test_a_schema_change_can_be_excluded(tmp_path: Path) -> None:
    reference = write(tmp_path / "r.csv", frame(1))
    current = write(tmp_path / "c.csv", frame(3).drop(columns=["age"]))
    evidence = run(tmp_path, reference, current, exclude=["id", "age"])
    assert evidence.status == "passed" and evidence.metrics["features"] == 4


def test_evaluate_refuses_inconsistent_evidence(shifted: ev.Evidence) -> None:
    tampered = shifted.model_copy(
        update={"metrics": shifted.metrics | {"drifted_features": 0}}, deep=True
    )
    [result] = STAGE.evaluate(DriftPolicy(), tampered)
    assert result.rule == "drift.evidence" and result.outcome == "fail"
    emptied = shifted.model_copy(update={"data": {}})
    assert STAGE.evaluate(DriftPolicy(), emptied)[0].rule == "drift.evidence"


def test_reports_escape_feature_names(tmp_path: Path) -> None:
    name = "<b>@team|#1</b>"
    reference = write(tmp_path / "r.csv", pd.DataFrame({name: ["a"] * 50 + ["b"] * 50}))
    current = write(tmp_path / "c.csv", pd.DataFrame({name: ["a"] * 100}))
    evidence = run(tmp_path, reference, current, exclude=[])
    markdown = STAGE.report_markdown(evidence)
    assert "<b>" not in markdown and "&lt;b&gt;" in markdown and "\\|" in markdown
    assert "@team" not in markdown  # no mention
    html = STAGE.report_html(evidence)
    assert "<b>" not in html and "&lt;b&gt;" in html


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({}, r"give workflow \(workflow_dispatch\) or repository_dispatch"),
        ({"workflow": "retrain.yml", "repository_dispatch": "retrain"}, "give workflow"),
        ({"workflow": "../retrain.yml"}, "should match pattern"),
        ({"workflow": "retrain.yml", "inputs": {"max_psi": "1"}}, "may not set max_psi"),
        (
            {"workflow": "retrain.yml", "inputs": {f"k{i}": i for i in range(9)}},
            "at most 8 inputs",
        ),
        (
            {"repository_dispatch": "retrain", "inputs": {f"k{i}": i for i in range(8)}},
            "at most 7 inputs",
        ),
        ({"repository_dispatch": "retrain", "ref": "dev"}, "ref applies to a workflow"),
        ({"repository_dispatch": "x" * 101}, "at most 100 characters"),
    ],
)
def test_dispatch_targets_are_checked(target: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DispatchTarget.model_validate(target)


# -- the retraining trigger, against the fake GitHub ----------------------------------------------


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    # github_with_pull asserts, on exit, no violations and no unimplemented operation.
    with github_with_pull(REPO, "a" * 40, TOKEN) as fake:
        yield fake


def context(gh: FakeGitHub) -> GitHubContext:
    return GitHubContext(
        token=TOKEN,
        api_url=gh.url,
        repository=REPO,
        sha="a" * 40,
        pr_number=7,
        run_url=None,
        run_key="1.1",
    )


def test_drift_starts_the_retraining_workflow(gh: FakeGitHub, shifted: ev.Evidence) -> None:
    gh.add_workflow(REPO, "retrain.yml", inputs=("drifted_features", "max_psi", "reason"))
    target = DispatchTarget(workflow="retrain.yml", inputs={"reason": "drift"})
    line = dispatch(shifted, target, context(gh))
    assert line.startswith("sent workflow_dispatch of retrain.yml on main to octo/model: ")
    assert "2 of 5 features drifted" in line
    [sent] = gh.dispatches(REPO)
    assert sent["event"] == "workflow_dispatch" and sent["ref"] == "main"
    inputs = sent["inputs"]
    assert inputs["reason"] == "drift"
    assert inputs["drifted_features"] == "color, age"  # largest PSI first
    assert float(inputs["max_psi"]) == pytest.approx(shifted.metrics["max_psi"], rel=1e-5)


def test_drift_can_send_a_repository_dispatch(gh: FakeGitHub, shifted: ev.Evidence) -> None:
    target = DispatchTarget(repository_dispatch="retrain-model", inputs={"model": "iris"})
    line = dispatch(shifted, target, context(gh))
    assert line.startswith("sent repository_dispatch 'retrain-model' to octo/model")
    [sent] = gh.dispatches(REPO)
    assert sent["event_type"] == "retrain-model"
    payload = sent["client_payload"]
    assert payload["model"] == "iris"
    assert payload["drifted_features"] == ["color", "age"]
    assert payload["drift"]["drifted_count"] == 2
    assert payload["drift"]["current_sha256"] == shifted.data["current"]["sha256"]


def test_no_dispatch_below_the_threshold(gh: FakeGitHub, shifted: ev.Evidence) -> None:
    target = DispatchTarget(repository_dispatch="retrain-model")
    line = dispatch(shifted, target, context(gh), max_drifted_features=2)
    assert line == "no dispatch: 2 of 5 features drifted, at most 2 allowed"
    assert gh.requests == [] and gh.dispatches(REPO) == []


def test_many_drifted_features_fit_githubs_input_limit(gh: FakeGitHub, tmp_path: Path) -> None:
    names = [f"feature_{'x' * 200}_{i}" for i in range(600)]
    reference = pd.DataFrame({n: ["a"] * 20 for n in names})
    current = pd.DataFrame({n: ["b"] * 20 for n in names})
    evidence = run(
        tmp_path,
        write(tmp_path / "r.csv", reference),
        write(tmp_path / "c.csv", current),
        exclude=[],
    )
    assert evidence.metrics["drifted_features"] == 600
    gh.add_workflow(REPO, "retrain.yml")
    dispatch(evidence, DispatchTarget(workflow="retrain.yml"), context(gh))
    dispatch(evidence, DispatchTarget(repository_dispatch="retrain"), context(gh))
    workflow, repository = gh.dispatches(REPO)
    assert len(json.dumps(workflow["inputs"])) <= MAX_WORKFLOW_INPUTS_CHARS
    listed = workflow["inputs"]["drifted_features"]
    kept = listed.split(" (+")[0].split(", ")
    assert listed.endswith(f" (+{600 - len(kept)} more)") and 200 < len(kept) < 600
    payload = repository["client_payload"]
    assert len(json.dumps(payload).encode()) < 64 * 1024
    assert len(payload["drifted_features"]) + payload["drift"]["drifted_features_left_out"] == 600


def test_github_refusals_are_one_line_errors(gh: FakeGitHub, shifted: ev.Evidence) -> None:
    with pytest.raises(DispatchError, match=r"retrain\.yml on main: GitHub answered 404 Not Found"):
        dispatch(shifted, DispatchTarget(workflow="retrain.yml"), context(gh))
    gh.add_workflow(REPO, "retrain.yml", inputs=("reason",))
    with pytest.raises(DispatchError, match="GitHub answered 422 Unexpected inputs provided"):
        dispatch(shifted, DispatchTarget(workflow="retrain.yml"), context(gh))
    gh.set_token(TOKEN, kind="readonly")  # a fork's read-only token
    with pytest.raises(DispatchError, match="GitHub answered 403"):
        dispatch(shifted, DispatchTarget(repository_dispatch="retrain"), context(gh))
    gh.set_token(TOKEN)
    gh.inject("POST", "*/dispatches", 502)
    with pytest.raises(DispatchError, match="GitHub answered 502 Bad Gateway \\(not retried"):
        dispatch(shifted, DispatchTarget(repository_dispatch="retrain"), context(gh))
    assert gh.dispatches(REPO) == []


def test_error_evidence_dispatches_nothing(gh: FakeGitHub, tmp_path: Path) -> None:
    evidence = run(tmp_path, str(tmp_path / "none.csv"), str(tmp_path / "none.csv"))
    with pytest.raises(DispatchError, match="the drift stage errored: reference file"):
        dispatch(evidence, DispatchTarget(repository_dispatch="retrain"), context(gh))
    assert gh.requests == []
