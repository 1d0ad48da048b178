#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, unit, property, fake-GitHub and act
# end-to-end tests. This is what CI runs (.ci/run calls exactly this).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" dev
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true SYFT_CHECK_FOR_APP_UPDATE=false
cd "$root"
bin=.venv/bin
echo "== ruff"; "$bin/ruff" check src tests benchmarks examples
echo "== ruff format"; "$bin/ruff" format --check src tests benchmarks examples
echo "== mypy"; "$bin/mypy"
echo "== pytest"; exec "$bin/python" -m pytest "$@"
