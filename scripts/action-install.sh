#!/usr/bin/env bash
# Used by every mlgate action: make the `mlgate` command of this action's own checkout, with
# the extras a stage needs, available to later steps. Reuses an installed mlgate of the same
# version (a self-hosted runner, or actions/setup earlier in the job) and adds only the extras
# it lacks; otherwise installs into a virtualenv under RUNNER_TEMP. Only `mlgate` goes on
# GITHUB_PATH, through a directory holding nothing else: the virtualenv's bin (python, pip,
# pytest...) on PATH would shadow the job's own interpreter, and a stage's `python -m pytest`
# must run where the user installed pytest. mlgate finds its own tools beside its interpreter.
# A virtualenv already there (restored by actions/cache) is used as is only when it was built
# for this checkout's sources, this interpreter and this path (its fingerprint file says so);
# any other is deleted and built again.
# Inputs arrive through the environment:
#   MLGATE_INSTALL  auto | always  (auto reuses a matching install on PATH)
#   MLGATE_EXTRAS   extras, comma-separated (e.g. "load"); "config" means the ones the stages
#                   enabled in MLGATE_CONFIG need
# With the argument `keys` it installs nothing and writes the cache keys to GITHUB_OUTPUT
# (actions/setup and the root action restore the virtualenv, or else pip's cache, with them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${MLGATE_INSTALL:-auto}
case "$mode" in auto|always) ;; *) echo "::error title=mlgate::install must be auto or always, not '$mode'"; exit 2;; esac
extras=${MLGATE_EXTRAS:-}
if ! [[ "$extras" =~ ^[a-z,]*$ ]]; then
  echo "::error title=mlgate::extras must be a comma-separated list of names, not '$extras'"
  exit 2
fi
python=${MLGATE_PYTHON:-python3}
venv="${RUNNER_TEMP:-/tmp}/mlgate-venv"
shims="${RUNNER_TEMP:-/tmp}/mlgate-bin"
want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)
have=""
if [ "$mode" = auto ] && command -v mlgate >/dev/null 2>&1; then
  have=$(mlgate --version 2>/dev/null | awk '{print $NF}')
fi

# What a virtualenv must have been built for to be reused: the package's sources (the version
# string stays the same between commits), the interpreter it links to, and its own path (its
# scripts name it).
fingerprint() {
  {
    # (not what building leaves there: egg-info, bytecode)
    (cd "$root" && find pyproject.toml src -type f ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)
    "$python" -c 'import os, sys; print(sys.version, os.path.realpath(sys.executable))'
    echo "$venv"
  } | sha256sum | cut -c1-32
}

if [ "${1:-}" = keys ]; then
  if [ "$have" = "$want" ]; then
    echo "mlgate $have is already on PATH: no cache to restore"
    echo "needed=false" >> "$GITHUB_OUTPUT"
    exit 0
  fi
  spec=$extras
  config=${MLGATE_CONFIG:-mlgate.yml}
  if [ "$extras" = config ] && [ -f "$config" ]; then
    # The enabled stages decide the extras; mlgate is not installed yet to read them.
    spec="config $(sha256sum < "$config" | cut -c1-16)"
  fi
  pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  key=$(printf '%s\n%s\n' "$(fingerprint)" "$spec" | sha256sum | cut -c1-32)
  {
    echo "needed=true"
    echo "venv-dir=$venv"
    echo "venv-key=mlgate-venv-${RUNNER_OS:-Linux}-${pyver}-${key}"
    echo "pip-key=mlgate-pip-${RUNNER_OS:-Linux}-${pyver}-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
    echo "pip-dir=$("$python" -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")"
  } >> "$GITHUB_OUTPUT"
  exit 0
fi

# One wheel of this checkout serves every install below (pip would build it each time).
wheel=""
build_wheel() {
  if [ -z "$wheel" ]; then
    local wheels="${RUNNER_TEMP:-/tmp}/mlgate-wheel"
    rm -rf "$wheels"
    "$1" -m pip wheel --disable-pip-version-check --quiet --no-deps --wheel-dir "$wheels" "$root"
    wheel=$(find "$wheels" -name 'mlgate-*.whl' -print -quit)
  fi
}

fresh=""
if [ "$have" = "$want" ]; then
  echo "mlgate $have already installed at $(command -v mlgate)"
  # The interpreter next to the mlgate command (through the shim's link) is the one the extras
  # must go into.
  python="$(dirname "$(readlink -f "$(command -v mlgate)")")/python"
  [ -x "$python" ] || python=python3
else
  fresh=$(fingerprint)
  if [ -e "$venv" ]; then
    built_for=$(cat "$venv/.mlgate-fingerprint" 2>/dev/null || echo none)
    if [ "$built_for" = "$fresh" ] \
      && [ "$("$venv/bin/mlgate" --version 2>/dev/null | awk '{print $NF}')" = "$want" ]; then
      echo "reusing the virtualenv at $venv (built for these sources, this Python and this path)"
    else
      echo "discarding the virtualenv at $venv: built for other sources, another Python or path, or incomplete"
      rm -rf "$venv"
    fi
  fi
  if [ ! -e "$venv" ]; then
    "$python" -m venv "$venv"
    build_wheel "$venv/bin/python"
    # Without PYTHONPATH: an mlgate found through it would count as installed, and pip would
    # leave the new virtualenv without one.
    env -u PYTHONPATH "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$wheel"
    how="installed mlgate $("$venv/bin/mlgate" --version | awk '{print $NF}') into $venv"
  else
    how="mlgate $want from the cached virtualenv $venv"
  fi
  mkdir -p "$shims"
  ln -sfn "$venv/bin/mlgate" "$shims/mlgate"
  echo "$shims" >> "$GITHUB_PATH"
  export PATH="$shims:$PATH"
  python="$venv/bin/python"
  echo "$how (on PATH: $shims/mlgate only)"
fi
if [ "$extras" = config ]; then
  extras=$(mlgate config extras --missing --config "${MLGATE_CONFIG:-mlgate.yml}")
else
  extras=$(mlgate config extras --missing --extras "$extras")
fi
if [ -n "$extras" ]; then
  build_wheel "$python"
  "$python" -m pip install --disable-pip-version-check --quiet "${wheel}[$extras]"
  echo "installed the extras mlgate needs here: $extras"
fi
# Written last: a virtualenv whose install failed half-way is never taken for a complete one.
if [ -n "$fresh" ]; then printf '%s\n' "$fresh" > "$venv/.mlgate-fingerprint"; fi
