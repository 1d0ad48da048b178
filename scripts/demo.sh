#!/usr/bin/env bash
# Set up and run the example pipeline locally: tests -> evidence -> gate -> local report.
# Everything stays on this machine: no GitHub, reports in examples/iris/.mlgate/.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" example || exit $?
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
# The example's test command runs `python` from the project virtualenv.
export PATH="$root/.venv/bin:$PATH"
mlgate="$root/.venv/bin/mlgate"
cd "$root/examples/iris" || exit 2
"$mlgate" config check || exit $?
"$mlgate" run || exit $?
"$mlgate" gate
verdict=$?
"$mlgate" report || exit $?
echo "demo: gate exit code $verdict (0 pass, 1 fail, 3 inconclusive); open examples/iris/.mlgate/report.html"
exit "$verdict"
