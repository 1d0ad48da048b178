#!/usr/bin/env bash
# Used by every mlgate action: make the `mlgate` command of this action's own checkout, with
# the extras a stage needs, available to later steps. Reuses an installed mlgate of the same
# version (a self-hosted runner, or actions/setup earlier in the job) and adds only the extras
# it lacks; otherwise installs into a virtualenv under RUNNER_TEMP. Only `mlgate` goes on
# GITHUB_PATH, through a directory holding nothing else: the virtualenv's bin (python, pip,
# pytest...) on PATH would shadow the job's own interpreter, and a stage's `python -m pytest`
# must run where the user installed pytest. mlgate finds its own tools beside its interpreter.
# Inputs arrive through the environment:
#   MLGATE_INSTALL  auto | always  (auto reuses a matching install)
#   MLGATE_EXTRAS   extras, comma-separated (e.g. "load"); "config" means the ones the stages
#                   enabled in MLGATE_CONFIG need
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
have=""
if [ "$mode" = auto ] && command -v mlgate >/dev/null 2>&1; then
  have=$(mlgate --version 2>/dev/null | awk '{print $NF}')
fi
if [ "$have" = "$want" ]; then
  echo "mlgate $have already installed at $(command -v mlgate)"
  # The interpreter next to the mlgate command (through the shim's link) is the one the extras
  # must go into.
  python="$(dirname "$(readlink -f "$(command -v mlgate)")")/python"
  [ -x "$python" ] || python=python3
else
  venv="${RUNNER_TEMP:-/tmp}/mlgate-venv"
  shims="${RUNNER_TEMP:-/tmp}/mlgate-bin"
  [ -x "$venv/bin/python" ] || "${MLGATE_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$root"
  mkdir -p "$shims"
  ln -sfn "$venv/bin/mlgate" "$shims/mlgate"
  echo "$shims" >> "$GITHUB_PATH"
  export PATH="$shims:$PATH"
  python="$venv/bin/python"
  echo "installed mlgate $(mlgate --version | awk '{print $NF}') into $venv (on PATH: $shims/mlgate only)"
fi
if [ "$extras" = config ]; then
  extras=$(mlgate config extras --missing --config "${MLGATE_CONFIG:-mlgate.yml}")
else
  extras=$(mlgate config extras --missing --extras "$extras")
fi
if [ -n "$extras" ]; then
  "$python" -m pip install --disable-pip-version-check --quiet "${root}[$extras]"
  echo "installed the extras mlgate needs here: $extras"
fi
