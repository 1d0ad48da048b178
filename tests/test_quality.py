"""The quality stage against real models: scikit-learn models trained here, a champion in a real
sqlite MLflow registry (alias production), candidates registered or saved as local model
directories, CSV and Parquet data made here. Resamples are 500 to keep the module quick."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlgate.evidence import Evidence
from mlgate.registry import Registry, files_digest
from mlgate.registry.mlflow_registry import FileDigest
from mlgate.stages.interface import RunContext
from mlgate.stages.quality.config import QualityConfig, QualityPolicy
from mlgate.stages.quality.stage import QualityStage, as_json
from mlgate.verdict import RuleResult
from tests.helpers import log_sklearn_model

STAGE = QualityStage()
FEATURES = ["x0", "x1", "x2", "x3"]
RESAMPLES = 500


# -- data and models -------------------------------------------------------------------------


def make_frame(rows: int, seed: int) -> Any:
    """Binary labels from a linear part plus a ring a linear model cannot see; segment C is a
    region of x3 (about 11% of rows), D a handful of rows, A and B the rest at random."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    score = x[:, 0] + x[:, 1] + 1.5 * (x[:, 2] ** 2 - 1)
    label = (score + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    segment = np.where(x[:, 3] > 1.2, "C", np.where(rng.random(rows) < 0.5, "A", "B"))
    segment[np.flatnonzero(segment != "C")[:15]] = "D"
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["segment"] = segment
    frame["label"] = label
    return frame


# A plain pyfunc model (no sklearn flavor, hence no probabilities), saved as code: x0 + x1 > 0.
THRESHOLD_MODEL = """
import mlflow
from mlflow.pyfunc import PythonModel


class ThresholdModel(PythonModel):
    def predict(self, context, model_input, params=None):
        return (model_input["x0"] + model_input["x1"] > 0).astype(int)


mlflow.models.set_model(ThresholdModel())
"""


def threshold_model(code: Path) -> Any:
    """The model of THRESHOLD_MODEL: its code file, where MLflow saves models from code (2.12
    and newer), else the same model as an object, pickled (constraints/lowest.txt's MLflow)."""
    import mlflow

    if hasattr(mlflow.models, "set_model"):
        return str(code)
    from mlflow.pyfunc import PythonModel

    class ThresholdModel(PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return (model_input["x0"] + model_input["x1"] > 0).astype(int)

    return ThresholdModel()


@dataclass(frozen=True)
class World:
    root: Path
    uri: str
    name: str  # registered model: version 1 (LR) at production, 2 (forest) at candidate
    csv: Path
    parquet: Path
    champion_dir: Path  # the production model, saved locally as well
    worse_dir: Path  # logistic regression on shuffled labels
    plain_dir: Path  # THRESHOLD_MODEL, pyfunc only


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    root = tmp_path_factory.mktemp("quality")
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    train, test = make_frame(2000, 1), make_frame(1000, 2)
    champion = LogisticRegression().fit(train[FEATURES], train["label"])
    # Better where the labels follow the ring, but taught the opposite labels in segment C.
    flipped = train["label"].where(train["segment"] != "C", 1 - train["label"])
    candidate = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=0).fit(
        train[FEATURES], flipped
    )
    shuffled = np.random.default_rng(3).permutation(train["label"].to_numpy())
    worse = LogisticRegression().fit(train[FEATURES], shuffled)
    signature = infer_signature(train[FEATURES], champion.predict(train[FEATURES]))
    name = f"churn-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.chdir(root)  # nothing MLflow writes by default may land in the repository
        client = MlflowClient(uri, uri)
        experiment = client.create_experiment("quality", (root / "artifacts").as_uri())
        for model, alias in ((champion, "production"), (candidate, "candidate")):
            with mlflow.start_run(experiment_id=experiment):
                version = log_sklearn_model(
                    model,
                    registered_model_name=name,
                    signature=signature,
                    pip_requirements=["scikit-learn"],
                    # MLflow saves with skops, which loads tree nodes only when told to.
                    skops_trusted_types=["sklearn.tree._tree.Tree"],
                )
            client.set_registered_model_alias(name, alias, version)
        for model, directory in ((champion, "champion-model"), (worse, "worse-model")):
            mlflow.sklearn.save_model(
                model, root / directory, signature=signature, pip_requirements=["scikit-learn"]
            )
        (root / "threshold_model.py").write_text(THRESHOLD_MODEL)
        mlflow.pyfunc.save_model(
            root / "plain-model",
            python_model=threshold_model(root / "threshold_model.py"),
            pip_requirements=["mlflow"],
        )
    test.to_csv(root / "test.csv", index=False)
    test.to_parquet(root / "test.parquet", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        yield World(
            root=root,
            uri=uri,
            name=name,
            csv=root / "test.csv",
            parquet=root / "test.parquet",
            champion_dir=root / "champion-model",
            worse_dir=root / "worse-model",
            plain_dir=root / "plain-model",
        )


def configure(world: World, **overrides: Any) -> QualityConfig:
    settings: dict[str, Any] = {
        "candidate": str(world.champion_dir),
        "data": str(world.parquet),
        "target": "label",
        "slices": ["segment"],
        "resamples": RESAMPLES,
        "tracking_uri": world.uri,
        "working_directory": str(world.root),
    }
    return QualityConfig.model_validate(settings | overrides)


def run(world: World, tmp_path: Path, **overrides: Any) -> Evidence:
    evidence = STAGE.run(configure(world, **overrides), RunContext(tmp_path / "evidence", None))
    # Every document the stage writes must survive the evidence schema.
    Evidence.model_validate_json(evidence.model_dump_json())
    return evidence


def entry(evidence: Evidence, metric: str, where: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = (where or evidence.data)["metrics"]
    found: dict[str, Any] = next(e for e in entries if e["metric"] == metric)
    return found


def slice_of(evidence: Evidence, value: str | None) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in evidence.data["slices"] if s["value"] == value)
    return found


def rules(results: list[RuleResult], rule: str) -> list[RuleResult]:
    return [r for r in results if r.rule == rule]


def directory_digest(directory: Path) -> str:
    from mlgate.evidence import sha256_file

    return files_digest(
        [
            FileDigest(p.relative_to(directory).as_posix(), sha256_file(p), p.stat().st_size)
            for p in directory.rglob("*")
            if p.is_file()
        ]
    )


# -- import cost -----------------------------------------------------------------------------


def test_importing_the_stage_imports_no_heavy_package() -> None:
    code = (
        "import sys, mlgate.stages.quality.stage; "
        "heavy = [m for m in ('numpy', 'pandas', 'sklearn', 'scipy', 'mlflow') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 3])
def test_classification_metrics_at_any_weights_equal_scikit_learn(classes: int) -> None:
    """The vectorised statistics, at bootstrap weights and at unit weights, are scikit-learn's
    metrics with those sample weights."""
    import numpy as np
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    from mlgate.stages.quality import bootstrap, metrics

    rng = np.random.default_rng(classes)
    rows = 300
    truth = rng.integers(0, classes, size=rows)
    probabilities = rng.dirichlet(np.ones(classes), size=rows)
    probabilities[np.arange(rows), truth] += 0.3  # better than chance
    probabilities = np.round(probabilities / probabilities.sum(axis=1, keepdims=True), 2)
    probabilities /= probabilities.sum(axis=1, keepdims=True)  # rounded: ties in the scores
    predicted = probabilities.argmax(axis=1)
    outputs = metrics.Outputs(predicted, probabilities, np.arange(classes))
    statistics, notes = metrics.statistics("classification", truth, outputs)
    assert notes == []
    weights = np.vstack([np.ones(rows), bootstrap.bootstrap_weights(rows, 5, rng)])
    for row in weights:
        sample = {"sample_weight": row}
        score = probabilities[:, 1] if classes == 2 else probabilities
        expected = {
            "accuracy": accuracy_score(truth, predicted, **sample),
            "f1_macro": f1_score(truth, predicted, average="macro", **sample),
            "roc_auc": roc_auc_score(truth, score, multi_class="ovr", **sample),
            "log_loss": log_loss(truth, probabilities, **sample),
        }
        for metric, value in expected.items():
            got = statistics[metric](row[None, :])[0]
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), metric


def test_macro_f1_counts_only_labels_present_in_the_resample() -> None:
    import numpy as np
    from sklearn.metrics import f1_score

    from mlgate.stages.quality import metrics

    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    statistics, _ = metrics.statistics("classification", truth, metrics.Outputs(predicted))
    weights = np.array([[2.0, 1, 1, 2, 0, 0]])  # label 2 drawn nowhere
    keep = weights[0] > 0
    expected = f1_score(
        truth[keep], predicted[keep], average="macro", sample_weight=weights[0][keep]
    )
    assert statistics["f1_macro"](weights)[0] == pytest.approx(expected)


def test_regression_metrics_at_any_weights_equal_scikit_learn() -> None:
    import numpy as np
    from sklearn.metrics import (
        mean_absolute_error,
        mean_squared_error,
        r2_score,
    )

    from mlgate.stages.quality import bootstrap, metrics

    rng = np.random.default_rng(7)
    truth = 1000 + rng.normal(size=200)  # a large mean: the variance must not lose digits
    predicted = truth + rng.normal(scale=0.5, size=200)
    statistics, _ = metrics.statistics("regression", truth, metrics.Outputs(predicted))
    for row in np.vstack([np.ones(200), bootstrap.bootstrap_weights(200, 5, rng)]):
        expected = {
            "rmse": mean_squared_error(truth, predicted, sample_weight=row) ** 0.5,
            "mae": mean_absolute_error(truth, predicted, sample_weight=row),
            "r2": r2_score(truth, predicted, sample_weight=row),
        }
        for metric, value in expected.items():
            assert statistics[metric](row[None, :])[0] == pytest.approx(value, rel=1e-9), metric


def test_bootstrap_weights_are_resamples_of_every_row() -> None:
    import numpy as np

    from mlgate.stages.quality import bootstrap

    weights = bootstrap.bootstrap_weights(50, 400, np.random.default_rng(0))
    assert weights.shape == (400, 50)
    assert np.all(weights.sum(axis=1) == 50)
    # Each row is drawn once per resample on average.
    assert weights.mean() == pytest.approx(1.0)
    assert 0.3 < (weights == 0).mean() < 0.45  # (1 - 1/n)^n of the cells, about 0.36


# -- champion and candidate ------------------------------------------------------------------


def test_a_clearly_worse_candidate_fails_against_the_registered_champion(
    world: World, tmp_path: Path
) -> None:
    evidence = run(
        world,
        tmp_path,
        candidate=str(world.worse_dir),
        champion=f"models:/{world.name}@production",
        data=str(world.csv),
    )
    assert evidence.status == "passed", evidence.reason
    accuracy = entry(evidence, "accuracy")
    assert accuracy["difference"] < -0.1
    assert accuracy["ci"][1] < -0.02
    assert accuracy["p_value"] < 1e-6
    assert accuracy["higher_is_better"] is True
    assert evidence.metrics["accuracy.candidate"] == accuracy["candidate"]
    assert evidence.metrics["accuracy.champion"] == accuracy["champion"]
    assert entry(evidence, "log_loss")["higher_is_better"] is False
    champion = evidence.data["champion"]
    assert champion["resolved"] == f"models:/{world.name}/1"
    assert (champion["registered_model"], champion["version"]) == (world.name, "1")
    # The registry's own digest of the version: promotion bundles name the same model.
    assert champion["digest"] == Registry.connect(world.uri).model_digest(world.name, "1")
    assert evidence.data["candidate"]["digest"] == directory_digest(world.worse_dir)
    assert evidence.data["candidate"]["flavors"] == ["python_function", "sklearn"]
    results = STAGE.evaluate(QualityPolicy(), evidence)
    (drop,) = rules(results, "quality.max_drop")[:1]
    assert drop.outcome == "fail"
    assert drop.reason.startswith("quality: accuracy ")
    assert "worse beyond the tolerance" in drop.reason
    assert STAGE.summary(evidence).startswith("classification on 1000 rows: accuracy 0.")


def test_better_overall_but_worse_on_one_slice_fails_that_slice_floor(
    world: World, tmp_path: Path
) -> None:
    # The champion is found at the production alias of the registered candidate's model.
    evidence = run(world, tmp_path, candidate=f"models:/{world.name}@candidate")
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["candidate"]["resolved"] == f"models:/{world.name}/2"
    assert evidence.data["champion"]["uri"] == f"models:/{world.name}@production"
    assert evidence.data["champion"]["resolved"] == f"models:/{world.name}/1"
    assert evidence.data["dataset"]["format"] == "parquet"
    accuracy = entry(evidence, "accuracy")
    assert accuracy["ci"][0] > 0  # surely better overall
    policy = QualityPolicy(slice_floors={"accuracy": 0.6})
    results = STAGE.evaluate(policy, evidence)
    assert {r.outcome for r in rules(results, "quality.max_drop")} == {"pass"}
    slice_rules = {r.reason.split(":")[1].strip(): r for r in rules(results, "quality.slice_floor")}
    assert set(slice_rules) == {"segment=A", "segment=B", "segment=C"}  # D is too small
    assert slice_rules["segment=C"].outcome == "fail"
    assert "candidate accuracy 0.1" in slice_rules["segment=C"].reason
    assert slice_rules["segment=A"].outcome == slice_rules["segment=B"].outcome == "pass"
    # Visible in the evidence: slice C's own comparison, with its interval.
    c = slice_of(evidence, "C")
    assert c["judged"] is True and c["rows"] >= 30
    c_accuracy = entry(evidence, "accuracy", c)
    assert c_accuracy["candidate"] < 0.3 < c_accuracy["champion"]
    assert c_accuracy["ci"][1] < 0
    small = slice_of(evidence, "D")
    assert small["rows"] == 15 and small["judged"] is False
    assert all(e["ci"] is None for e in small["metrics"])
    assert small["note"].startswith("15 rows, fewer than 30: values only")
    report = STAGE.report_markdown(evidence)
    assert "| segment \\= C |" in report
    assert "| accuracy ↑ |" in report


def test_the_same_model_passes_with_an_interval_at_zero(world: World, tmp_path: Path) -> None:
    evidence = run(world, tmp_path, champion=str(world.champion_dir))
    assert evidence.status == "passed", evidence.reason
    for item in evidence.data["metrics"]:
        assert item["difference"] == 0
        assert item["ci"] == [0, 0]
    assert entry(evidence, "accuracy")["p_value"] == 1.0
    assert "the candidate and the champion are the same files" in evidence.data["notes"]
    results = STAGE.evaluate(QualityPolicy(floors={"roc_auc": 0.7}), evidence)
    assert {r.outcome for r in results} == {"pass"}
    assert len(rules(results, "quality.max_drop")) == 4


def test_csv_and_parquet_give_the_same_numbers(world: World, tmp_path: Path) -> None:
    common = {"candidate": str(world.worse_dir), "champion": str(world.champion_dir)}
    from_csv = run(world, tmp_path, data=str(world.csv), **common)
    from_parquet = run(world, tmp_path, data=str(world.parquet), **common)
    assert from_csv.data["metrics"] == from_parquet.data["metrics"]
    assert from_csv.data["slices"] == from_parquet.data["slices"]
    csv_data, parquet_data = from_csv.data["dataset"], from_parquet.data["dataset"]
    assert (csv_data["format"], parquet_data["format"]) == ("csv", "parquet")
    assert csv_data["rows"] == parquet_data["rows"] == 1000
    assert csv_data["columns"] == [*FEATURES, "segment", "label"]
    assert csv_data["sha256"] != parquet_data["sha256"]


def test_the_bootstrap_is_seeded(world: World, tmp_path: Path) -> None:
    common = {"candidate": str(world.worse_dir), "champion": str(world.champion_dir), "slices": []}
    first, again = run(world, tmp_path, **common), run(world, tmp_path, **common)
    other = run(world, tmp_path, seed=1, **common)
    assert entry(first, "accuracy")["ci"] == entry(again, "accuracy")["ci"]
    assert entry(first, "accuracy")["ci"] != entry(other, "accuracy")["ci"]


def test_the_evidence_records_one_sided_bounds_inside_the_interval(
    world: World, tmp_path: Path
) -> None:
    common = {"candidate": str(world.worse_dir), "champion": str(world.champion_dir), "slices": []}
    evidence = run(world, tmp_path, **common)
    for item in evidence.data["metrics"]:
        low, high = item["ci"]
        one_low, one_high = item["one_sided"]
        # At the same level, a one-sided bound is a nearer quantile than the two-sided ends.
        assert low <= one_low <= item["difference"] <= one_high <= high, item
        relative_low, relative_high = item["one_sided_relative"]
        # The relative change's bounds, near the difference's over the champion's value.
        scale = abs(item["champion"])
        assert relative_low <= item["difference"] / scale <= relative_high, item
        assert relative_low == pytest.approx(one_low / scale, abs=0.05), item
    results = STAGE.evaluate(QualityPolicy(), evidence)
    assert all("one-sided 95%" in r.reason for r in rules(results, "quality.max_drop"))


def test_a_model_without_probabilities_is_judged_without_auc_and_log_loss(
    world: World, tmp_path: Path
) -> None:
    from mlgate.stages.scan.config import FailOn, ScanPolicy

    # A pyfunc of custom code (from code, or cloudpickled where MLflow cannot save models from
    # code) is code, not model data: the model scan rightly refuses it. This test is about the
    # quality stage's judgement, so its scan policy reports model findings without failing.
    lenient = ScanPolicy(fail_on=FailOn(model="never"))
    config = configure(world, candidate=str(world.plain_dir), champion=str(world.champion_dir))
    evidence = STAGE.run(config, RunContext(tmp_path / "evidence", None, scan_policy=lenient))
    assert evidence.status == "passed", evidence.reason
    # Not an sklearn model: the integer target with two values makes it classification.
    assert evidence.data["task"] == "classification"
    assert evidence.data["candidate"]["flavors"] == ["python_function"]
    assert any(n.startswith("candidate: no probabilities") for n in evidence.data["notes"])
    auc = entry(evidence, "roc_auc")
    assert auc["candidate"] is None and auc["champion"] is not None and auc["ci"] is None
    results = STAGE.evaluate(QualityPolicy(floors={"log_loss": 1.0}), evidence)
    (auc_rule,) = [r for r in rules(results, "quality.max_drop") if "roc_auc" in r.reason]
    assert auc_rule.outcome == "inconclusive"
    assert "the candidate none" in auc_rule.reason
    (floor,) = rules(results, "quality.floor")
    assert floor.outcome == "fail"
    assert floor.reason == "quality: log_loss was not measured; at most 1 required"


def test_regression(world: World, tmp_path: Path) -> None:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.metrics import mean_squared_error, r2_score

    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 3))
    y = x @ np.array([3.0, -2.0, 0.5]) + 10 + rng.normal(size=600)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=y)
    train, test = frame.iloc[:300], frame.iloc[300:]
    champion = LinearRegression().fit(train[["a", "b", "c"]], train["price"])
    candidate = Ridge(alpha=1000.0).fit(train[["a", "b", "c"]], train["price"])
    for model, path in ((champion, "lr"), (candidate, "ridge")):
        mlflow.sklearn.save_model(model, tmp_path / path, pip_requirements=["scikit-learn"])
    test.to_csv(tmp_path / "prices.csv", index=False)
    evidence = run(
        world,
        tmp_path,
        candidate=str(tmp_path / "ridge"),
        champion=str(tmp_path / "lr"),
        data=str(tmp_path / "prices.csv"),
        target="price",
        slices=[],
    )
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["task"] == "regression"  # an sklearn regressor says so
    assert [e["metric"] for e in evidence.data["metrics"]] == ["rmse", "mae", "r2"]
    predicted = candidate.predict(test[["a", "b", "c"]])
    assert evidence.metrics["rmse.candidate"] == pytest.approx(
        mean_squared_error(test["price"], predicted) ** 0.5
    )
    assert evidence.metrics["r2.candidate"] == pytest.approx(r2_score(test["price"], predicted))
    results = STAGE.evaluate(QualityPolicy(floors={"rmse": 10.0}), evidence)
    rmse_rule = next(r for r in rules(results, "quality.max_drop") if "rmse" in r.reason)
    assert "5% of the champion's value" in rmse_rule.reason
    assert rmse_rule.outcome == "fail"  # heavy shrinkage is surely worse
    (floor,) = rules(results, "quality.floor")
    assert floor.outcome == "pass" and "at most 10 allowed" in floor.reason


# -- first model -----------------------------------------------------------------------------


def test_first_model_without_a_champion_is_judged_on_floors_only(
    world: World, tmp_path: Path
) -> None:
    # The model's "stable" alias is not set: there is no champion yet.
    evidence = run(world, tmp_path, candidate=f"models:/{world.name}/2", champion_alias="stable")
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["champion"] is None
    assert evidence.data["champion_note"] == f"models:/{world.name}@stable is not set"
    assert all(e["champion"] is None and e["ci"] is None for e in evidence.data["metrics"])
    assert "accuracy.champion" in evidence.metrics
    assert STAGE.summary(evidence).endswith("(no champion)")
    results = STAGE.evaluate(QualityPolicy(), evidence)
    assert [(r.rule, r.outcome) for r in results] == [("quality.first_model", "pass")]
    assert results[0].reason.startswith("quality: no champion: first model, judged on floors only")
    results = STAGE.evaluate(QualityPolicy(floors={"accuracy": 0.9}), evidence)
    assert [r.outcome for r in results] == ["pass", "fail"]
    results = STAGE.evaluate(QualityPolicy(first_model="fail"), evidence)
    assert [r.outcome for r in results] == ["fail"]
    assert "first_model: fail" in results[0].reason


# -- bad input -------------------------------------------------------------------------------


def broken_model(world: World, tmp_path: Path) -> Path:
    import shutil

    directory = tmp_path / "broken-model"
    shutil.copytree(world.champion_dir, directory)
    for path in directory.iterdir():
        if path.name.startswith("model."):
            path.write_bytes(b"not a model")
    return directory


def bad_input_cases(world: World, tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("x0,x1,x2,x3,segment,label\n")
    (tmp_path / "bad.parquet").write_text("x0,x1\n1,2\n")
    (tmp_path / "no-model").mkdir()
    make_frame(100, 4).drop(columns=["x2"]).to_csv(tmp_path / "no-x2.csv", index=False)
    name = world.name
    return {
        "candidate missing": (
            {"candidate": "nowhere"},
            "candidate: model directory nowhere does not exist",
        ),
        "candidate not a model": (
            {"candidate": str(tmp_path / "no-model")},
            f"candidate: {tmp_path / 'no-model'} is not an MLflow model (no MLmodel file)",
        ),
        "candidate unloadable": (
            {"candidate": str(broken_model(world, tmp_path))},
            # A file that is no model cannot be scanned to its end: refused before loading.
            "candidate: model scan failed: broken-model: ",
        ),
        "candidate version missing": (
            {"candidate": f"models:/{name}/99"},
            f"candidate: model {name} version 99 does not exist in {world.uri}",
        ),
        "data missing": ({"data": "missing.csv"}, "data file missing.csv does not exist"),
        "data a directory": (
            {"data": str(tmp_path / "no-model")},
            f"data {tmp_path / 'no-model'} is a directory, not a CSV or Parquet file",
        ),
        "data empty": ({"data": str(tmp_path / "empty.csv")}, "is empty"),
        "data without rows": ({"data": str(tmp_path / "header.csv")}, "has no rows"),
        "data unreadable": (
            {"data": str(tmp_path / "bad.parquet")},
            f"cannot read data {tmp_path / 'bad.parquet'} as parquet: ",
        ),
        "target missing": (
            {"target": "churned"},
            "target column 'churned' is not in data",
        ),
        "slice column missing": ({"slices": ["region"]}, "slice column 'region' is not in data"),
        "model columns missing": (
            {"data": str(tmp_path / "no-x2.csv")},
            "candidate: the model expects column x2, missing from data",
        ),
        "predict fails": (
            {"features": ["segment"]},
            "candidate: predict failed on columns segment: ",
        ),
        "champion alias not set": (
            {"champion": f"models:/{name}@nope"},
            f"champion: alias nope of model {name} is not set (models:/{name}@nope)",
        ),
        "champion model missing": (
            {"champion": "models:/no-such-model@production"},
            f"champion: registered model no-such-model does not exist in {world.uri}",
        ),
        "regression on text": (
            {"target": "segment", "task": "regression"},
            "target column 'segment' holds",
        ),
        "timeout": (
            {"timeout": 1e-6},
            "loading the models did not finish within the stage timeout of 1e-06 s",
        ),
    }


CASES = [
    "candidate missing",
    "candidate not a model",
    "candidate unloadable",
    "candidate version missing",
    "data missing",
    "data a directory",
    "data empty",
    "data without rows",
    "data unreadable",
    "target missing",
    "slice column missing",
    "model columns missing",
    "predict fails",
    "champion alias not set",
    "champion model missing",
    "regression on text",
    "timeout",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_an_error_with_one_line(world: World, tmp_path: Path, case: str) -> None:
    overrides, expected = bad_input_cases(world, tmp_path)[case]
    evidence = run(world, tmp_path, **overrides)
    assert evidence.status == "error"
    assert evidence.reason is not None
    assert expected in evidence.reason
    assert "\n" not in evidence.reason and len(evidence.reason) < 400
    assert STAGE.summary(evidence) == f"error: {evidence.reason}"
    assert STAGE.report_markdown(evidence) == ""


def test_predict_failure_keeps_mlflows_reason(world: World, tmp_path: Path) -> None:
    evidence = run(world, tmp_path, features=["segment"])
    assert evidence.reason is not None
    # MLflow's message dumps the data first; the end, which names what is missing, is kept.
    assert "Model is missing inputs" in evidence.reason


def test_config_requires_candidate_data_and_target() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        QualityConfig.model_validate({"candidate": "m", "data": "d.csv"})
    with pytest.raises(ValidationError):
        QualityConfig.model_validate(
            {"candidate": "m", "data": "d.csv", "target": "y", "resamples": 10}
        )


# -- the policy ------------------------------------------------------------------------------


def test_policy_tolerances_merge_over_the_defaults() -> None:
    from pydantic import ValidationError

    policy = QualityPolicy.model_validate({"max_drop": {"accuracy": 0.01, "roc_auc": None}})
    assert policy.max_drop == {"accuracy": 0.01, "f1_macro": 0.02, "roc_auc": None, "r2": 0.02}
    assert policy.tolerance("accuracy", 0.9) == (0.01, "0.01")
    assert policy.tolerance("roc_auc", 0.9) is None
    assert policy.tolerance("rmse", 4.0) == (0.2, "5% of the champion's value = 0.2")
    # Dumped and read back (as the policy digest does), it is the same policy.
    assert QualityPolicy.model_validate(policy.model_dump()) == policy
    for bad in ({"max_drop": {"accuracy": -0.1}}, {"floors": {"auc": 0.5}}):
        with pytest.raises(ValidationError):
            QualityPolicy.model_validate(bad)


def with_accuracy(evidence: Evidence, **changes: Any) -> Evidence:
    import copy

    data = copy.deepcopy(evidence.data)
    entry(evidence, "accuracy", data).update(changes)
    return evidence.model_copy(update={"data": data})


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        ([-0.06, -0.03], "fail"),  # surely worse beyond the tolerance of 0.02
        ([-0.019, 0.05], "pass"),  # any drop surely within it
        ([-0.03, 0.01], "inconclusive"),  # the data cannot tell
        ([0.05, 0.10], "pass"),  # an improvement never fails
    ],
)
def test_the_interval_decides_the_drop(
    world: World, tmp_path: Path, ci: list[float], outcome: str
) -> None:
    evidence = run(world, tmp_path, champion=str(world.champion_dir), slices=[])
    # The one-sided bounds decide (quality_rules); here they are the interval's ends.
    changed = with_accuracy(evidence, ci=ci, one_sided=ci, difference=sum(ci) / 2)
    results = STAGE.evaluate(QualityPolicy(), changed)
    accuracy_rule = next(r for r in rules(results, "quality.max_drop") if "accuracy" in r.reason)
    assert accuracy_rule.outcome == outcome
    # Lower is better for log loss: the same interval, turned, decides the other way round.
    log_loss = entry(evidence, "log_loss")
    data = dict(evidence.data)
    data["metrics"] = [
        e
        if e["metric"] != "log_loss"
        else e | {"ci": [-ci[1], -ci[0]], "one_sided": [-ci[1], -ci[0]]}
        for e in data["metrics"]
    ]
    policy = QualityPolicy(max_drop={"log_loss": 0.02})
    turned = STAGE.evaluate(policy, evidence.model_copy(update={"data": data}))
    log_loss_rule = next(r for r in rules(turned, "quality.max_drop") if "log_loss" in r.reason)
    assert log_loss_rule.outcome == outcome, log_loss


def test_tampered_evidence_decides_nothing(world: World, tmp_path: Path) -> None:
    evidence = run(world, tmp_path, champion=str(world.champion_dir), slices=[])
    for changes in ({"ci": [0.1, -0.1]}, {"higher_is_better": False}, {"candidate": "0.9"}):
        results = STAGE.evaluate(QualityPolicy(), with_accuracy(evidence, **changes))
        assert [(r.rule, r.outcome) for r in results] == [("quality.evidence", "fail")]
    no_task = evidence.model_copy(update={"data": evidence.data | {"task": None}})
    assert STAGE.evaluate(QualityPolicy(), no_task)[0].rule == "quality.evidence"


def test_slice_floors_without_slices_fail(world: World, tmp_path: Path) -> None:
    evidence = run(world, tmp_path, champion=str(world.champion_dir), slices=[])
    results = STAGE.evaluate(QualityPolicy(slice_floors={"accuracy": 0.5}), evidence)
    (slice_rule,) = rules(results, "quality.slice_floor")
    assert slice_rule.outcome == "fail"


# -- reports ---------------------------------------------------------------------------------


def test_reports_escape_slice_values_from_the_data(world: World, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_parquet(world.parquet)
    hostile = "<img src=x onerror=alert(1)>|@admin [link](http://x) **bold**\n# heading"
    frame.loc[frame["segment"] == "A", "segment"] = hostile
    frame.loc[frame.index[-40:], "segment"] = None  # an empty cell: a segment not known
    frame.to_csv(tmp_path / "hostile.csv", index=False)
    evidence = run(
        world, tmp_path, champion=str(world.champion_dir), data=str(tmp_path / "hostile.csv")
    )
    assert evidence.status == "passed", evidence.reason
    assert any(s["value"] == hostile for s in evidence.data["slices"])
    unknown = slice_of(evidence, None)
    assert unknown["rows"] == 40 and unknown["judged"] is True
    assert evidence.data["slices"][-1] is unknown  # listed last
    markdown = STAGE.report_markdown(evidence)
    assert "| segment \\= \\(missing\\) | 40 |" in markdown
    assert "<img" not in markdown and "&lt;img" in markdown
    assert "@admin" not in markdown  # no mention
    assert "[link](" not in markdown and "**bold**" not in markdown
    for line in markdown.splitlines():
        if "img" in line:
            assert line.startswith("| segment \\= ")  # still one table row
    html = STAGE.report_html(evidence)
    assert "<img" not in html and "&lt;img" in html
    assert html.count("<table>") == 2


def test_as_json_holds_the_comparison_and_with_a_policy_the_rules(
    world: World, tmp_path: Path
) -> None:
    import json

    evidence = run(
        world, tmp_path, candidate=str(world.worse_dir), champion=str(world.champion_dir)
    )
    document = as_json(evidence)
    assert document["status"] == "passed"
    assert document["task"] == "classification"
    assert document["metrics"] == evidence.data["metrics"]
    assert document["summary"] == STAGE.summary(evidence)
    assert "rules" not in document
    judged = as_json(evidence, QualityPolicy())
    assert any(r["rule"] == "quality.max_drop" and r["outcome"] == "fail" for r in judged["rules"])
    json.dumps(judged)  # JSON as it is
    error = as_json(run(world, tmp_path, data="missing.csv"))
    assert error["status"] == "error" and "does not exist" in error["reason"]


def test_a_directory_given_as_data_on_the_command_line_is_bad_input(tmp_path: Path) -> None:
    from tests.test_bad_evidence import run_mlgate

    config = tmp_path / "mlgate.yml"
    config.write_text("stages: {quality: {candidate: m, data: d.csv, target: y}}\n")
    (tmp_path / "data").mkdir()
    directory, evidence = str(tmp_path / "data"), tmp_path / "evidence"
    code, err = run_mlgate(
        "quality", "--config", str(config), "--evidence-dir", str(evidence), "--data", directory
    )
    assert code == 2, err
    assert err == f"mlgate: error: --data {directory}: is a directory, not a CSV or Parquet file\n"
    assert not evidence.exists()  # bad input: nothing was run, no evidence written
