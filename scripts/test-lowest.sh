#!/usr/bin/env bash
# Test the floors: build (or reuse) .venv-lowest with every dependency at the lowest version
# pyproject allows (constraints/lowest.txt) and run the tests of what depends most on them
# there: every stage (tests, bench, load, drift, probe, quality, scan), serving (MLflow,
# containers), the MLflow registry, promotion, the statistics and GitHub publishing. Called by
# scripts/test.sh; a stamp of pyproject and the constraints skips pip when nothing changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
venv="$root/.venv-lowest"
constraints="$root/constraints/lowest.txt"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.mlgate-installed-lowest"
digest=$(cat "$root/pyproject.toml" "$constraints" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  # Old numpy/scipy/pandas/pyarrow must come as wheels: building them would hide a floor that
  # cannot be installed on this Python.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location -c "$constraints" \
    --only-binary numpy,scipy,pandas,pyarrow,scikit-learn,PyYAML \
    -e "${root}[example,stats,load,bench,serve,container,scan,drift,quality]" pytest hypothesis jsonschema
  echo "$digest" > "$stamp"
fi
"$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null \
  || { "$venv/bin/python" -m pip check --disable-pip-version-check >&2; exit 1; }
"$venv/bin/python" -W ignore -c 'import sys, mlflow, pydantic, numpy, pandas
print("lowest versions: Python", sys.version.split()[0], "mlflow", mlflow.__version__,
      "pydantic", pydantic.VERSION, "numpy", numpy.__version__, "pandas", pandas.__version__)'
cd "$root"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
# PYTHONPATH: this checkout's code, whatever the editable install points at.
# The skops test is deselected: skops files are what MLflow 3 writes, and the lowest MLflow
# writes the pickles the other model-format tests scan. Image scans need trivy, and the
# model-engine test the newest ML libraries, not a floor: they run in the main suite only.
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" exec "$venv/bin/python" -m pytest -q \
  -p no:cacheprovider \
  tests/test_registry.py tests/test_quality.py tests/test_quality_registry.py \
  tests/test_promotion.py tests/test_promotion_evidence.py tests/test_stats.py \
  tests/test_sequential.py tests/test_github_publish.py tests/test_github_fork_evidence.py \
  tests/test_github_merge_queue.py tests/test_command_imports.py tests/test_tests_stage.py \
  tests/test_bench.py tests/test_drift.py tests/test_tabular.py tests/test_probe.py \
  tests/test_load.py tests/test_load_rounds.py tests/test_load_sequential.py \
  tests/test_serving.py tests/test_serving_together.py tests/test_model_guard.py \
  tests/test_container.py tests/test_docker_sdk.py tests/test_scan_code_and_model.py \
  tests/test_scan_dependencies.py tests/test_scan_model_allowlist.py \
  tests/test_scan_model_bypasses.py tests/test_scan_model_formats.py tests/test_scan_policy.py \
  tests/test_scan_registry_models.py tests/test_scan_stage.py \
  --deselect tests/test_scan_model_formats.py::test_skops_and_mlflow_model_directory_pass_and_are_scanned \
  "$@"
