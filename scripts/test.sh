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
echo "== docker engine (container tests)"
# Installs and starts a local engine with safe flags and builds the cached base image; where no
# engine can be started at all, the container tests skip and say why.
if engine=$("$root/scripts/docker-engine.sh" | tail -n 1); then
  export "${engine?}"
else
  echo "no Docker engine could be started; the container tests will skip with the reason"
fi
echo "== lowest supported versions (constraints/lowest.txt)"; "$root/scripts/test-lowest.sh"
echo "== pytest"; exec "$bin/python" -m pytest "$@"
