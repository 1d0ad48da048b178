#!/usr/bin/env bash
# Used by every mlgate action: make the `mlgate` command of this action's own checkout
# available to later steps. Reuses an installed mlgate of the same version (a self-hosted
# runner, or actions/setup earlier in the job); otherwise installs into a virtualenv under
# RUNNER_TEMP and puts it on GITHUB_PATH. Inputs arrive through the environment:
#   MLGATE_INSTALL  auto | always  (auto reuses a matching install)
#   MLGATE_EXTRAS   optional extras, e.g. "example"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${MLGATE_INSTALL:-auto}
case "$mode" in auto|always) ;; *) echo "::error title=mlgate::install must be auto or always, not '$mode'"; exit 2;; esac
extras=${MLGATE_EXTRAS:-}
if ! [[ "$extras" =~ ^[a-z,]*$ ]]; then
  echo "::error title=mlgate::extras must be a comma-separated list of names, not '$extras'"
  exit 2
fi
want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)
if [ "$mode" = auto ] && command -v mlgate >/dev/null 2>&1; then
  have=$(mlgate --version 2>/dev/null | awk '{print $NF}')
  if [ "$have" = "$want" ] && [ -z "$extras" ]; then
    echo "mlgate $have already installed at $(command -v mlgate)"
    exit 0
  fi
fi
python=${MLGATE_PYTHON:-python3}
venv="${RUNNER_TEMP:-/tmp}/mlgate-venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$spec"
echo "$venv/bin" >> "$GITHUB_PATH"
echo "installed mlgate $("$venv/bin/mlgate" --version | awk '{print $NF}') into $venv"
