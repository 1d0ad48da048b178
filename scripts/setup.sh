#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install mlgate into it with the given
# extras, e.g. `scripts/setup.sh dev`. Re-running is quick: pip skips what is installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-example}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "mlgate needs Python 3.10 or newer; $python is $("$python" --version 2>&1)" >&2
  exit 2
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
# A stamp of what was installed lets a re-run skip pip entirely when nothing changed.
stamp="$root/.venv/.mlgate-installed-$extras"
digest=$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$extras]"
  echo "$digest" > "$stamp"
fi
