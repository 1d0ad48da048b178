#!/usr/bin/env bash
# Set up and run the example pipeline locally: the model is trained and registered in a local
# sqlite MLflow registry as the candidate (beside a champion in production), then tests,
# benchmarks, a load test of the candidate and the champion served side by side by MLflow and
# the candidate's quality against the champion
# -> evidence -> gate -> local report -> evidence bundle -> promotion to staging. Everything
# stays on this machine: no GitHub, reports in examples/iris/.mlgate/.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
project="$root/examples/iris"
# mlgate first (it knows which extras the project's mlgate.yml needs), then those extras and
# the project's own requirements, the way a user installs their project beside mlgate.
"$root/scripts/setup.sh" base || exit $?
extras=$(cd "$project" && "$root/.venv/bin/mlgate" config extras) || exit $?
"$root/scripts/setup.sh" "$extras" "$project/requirements.txt" || exit $?
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
# The example's commands (python -m pytest, python log_model.py) run in the project virtualenv.
export PATH="$root/.venv/bin:$PATH"
mlgate="$root/.venv/bin/mlgate"
cd "$project" || exit 2
"$mlgate" config check || exit $?
mkdir -p .mlgate
export MLFLOW_TRACKING_URI=sqlite:///.mlgate/mlflow.db
# The champion in production (logged on the first run only), then a new candidate.
python log_model.py --tracking-uri "$MLFLOW_TRACKING_URI" --alias production --if-missing >/dev/null || exit $?
logged=$(python log_model.py --tracking-uri "$MLFLOW_TRACKING_URI" --alias candidate) || exit $?
version=$(sed -n 's/^version=//p' <<< "$logged")
# A stage that fails or errors does not stop the demo: the gate and the report say which stage
# and why, as the root action does on a pull request.
"$mlgate" run
ran=$?
"$mlgate" gate
verdict=$?
"$mlgate" report || exit $?
echo "demo: stages exit code $ran, gate exit code $verdict (0 pass, 1 fail, 3 inconclusive); open examples/iris/.mlgate/report.html"
if [ "$verdict" -ne 0 ]; then exit "$verdict"; fi
# The passing candidate goes to staging through the gated path: bundle, verify, promote.
"$mlgate" bundle create --version "$version" || exit $?
"$mlgate" bundle verify .mlgate/bundle || exit $?
"$mlgate" promote --version "$version" --to staging --reason "demo: gate passed" || exit $?
"$mlgate" history
