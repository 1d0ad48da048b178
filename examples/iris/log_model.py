"""Train the iris model and log it to an MLflow store as a registered model with an alias.

    python log_model.py --tracking-uri sqlite:///mlflow.db [--name iris] [--alias champion]
        [--if-missing]

Logs the fitted pipeline with `mlflow.sklearn.log_model` (with an input example, so the
model has a signature), registers it as a new version of `--name`, points `--alias` at that
version and prints the model URI (`models:/NAME@ALIAS`) on the last line of stdout, for
`mlflow models serve -m URI`. Set MLFLOW_DISABLE_TELEMETRY=true and DO_NOT_TRACK=true (MLflow
reports usage otherwise).
"""

from __future__ import annotations

import argparse
import os

import model as iris
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="e.g. sqlite:///mlflow.db")
    parser.add_argument("--name", default="iris", help="registered model name")
    parser.add_argument("--alias", default="champion", help="alias set on the new version")
    parser.add_argument("--experiment", default="iris")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="log nothing when the alias already points at a version (a champion is logged once)",
    )
    args = parser.parse_args()

    # Set before mlflow is imported, which reads them as it starts.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    if args.if_missing:
        try:
            held = mlflow.MlflowClient().get_model_version_by_alias(args.name, args.alias)
        except mlflow.exceptions.MlflowException:
            held = None  # no such model or alias yet
        if held is not None:
            print(f"version={held.version}")
            print(f"models:/{args.name}@{args.alias}")
            return
    mlflow.set_experiment(args.experiment)
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    # Named columns, as the scoring requests of payloads.jsonl send them (dataframe_split) and
    # as the quality stage's holdout CSV has them: fitted on names, the model is scored by name.
    train_x, test_x, train_y, test_y = (
        pd.DataFrame(part, columns=list(iris.FEATURES)) if part.ndim == 2 else part
        for part in iris.split()
    )
    model = iris.train(train_x, train_y)
    # Measurements are doubles and the answer is a class number; declared rather than inferred.
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in iris.FEATURES]),
        outputs=Schema([ColSpec("long")]),
    )
    # MLflow 3 names a logged model; MLflow 2 (from 2.10, as requirements.txt allows) took
    # the same word as its artifact path.
    mlflow_3 = int(mlflow.__version__.split(".")[0]) >= 3
    where = {"name": "model"} if mlflow_3 else {"artifact_path": "model"}
    with mlflow.start_run():
        mlflow.log_metric("accuracy", float(model.score(test_x, test_y)))
        info = mlflow.sklearn.log_model(
            model,
            **where,
            signature=signature,
            input_example=test_x[:3],
            registered_model_name=args.name,
        )
    # Asked of the registry: ModelInfo names the registered version only from MLflow 2.13 on.
    client = mlflow.MlflowClient()
    [registered] = client.search_model_versions(f"name='{args.name}' and run_id='{info.run_id}'")
    version = registered.version
    client.set_registered_model_alias(args.name, args.alias, str(version))
    print(f"version={version}")
    print(f"models:/{args.name}@{args.alias}")


if __name__ == "__main__":
    main()
