#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install mlgate into it with the given
# extras (comma-separated; "base" for none), e.g. `scripts/setup.sh dev`, and optionally a
# project's requirements file: `scripts/setup.sh load,quality examples/iris/requirements.txt`.
# Re-running is quick: a stamp of what was installed skips pip when nothing changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-example}
requirements=${2:-}
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
digest=$(sha256sum < "$root/pyproject.toml" | cut -c1-16)
target="${root}[$extras]"
[ "$extras" = base ] && target="$root"
install=(-e "$target")
if [ -n "$requirements" ]; then
  [ -f "$requirements" ] || { echo "setup: no requirements file $requirements" >&2; exit 2; }
  install+=(-r "$requirements")
  stamp="$stamp-$(sha256sum <<< "$requirements" | cut -c1-8)"
  digest="$digest-$(sha256sum < "$requirements" | cut -c1-16)"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location "${install[@]}"
  echo "$digest" > "$stamp"
fi

# Tools the tests need from Debian (installed as root): shellcheck, because actionlint runs it
# only when it is on PATH and skips those checks silently otherwise; chromium, which renders
# report.html for the test that looks at the report as a user would.
debian_tool() {
  local tool=$1 why=$2
  command -v "$tool" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq "$tool" >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; } \
      || echo "apt-get install $tool failed (output above)" >&2
  fi
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is needed by $why and could not be installed:" \
      "install the Debian package '$tool' as root (apt-get install $tool)" >&2
    exit 2
  fi
}
if [ "$extras" = dev ]; then
  debian_tool shellcheck "the lint tests (actionlint runs it)"
  debian_tool chromium "the report rendering test (tests/test_report_reader.py)"
fi

# The act end-to-end test installs mlgate the way the actions do on a fresh runner, offline:
# from a local wheelhouse of its dependencies, fetched here once per pyproject change.
if [ "$extras" = dev ]; then
  wheelhouse="$root/.cache/wheelhouse"
  if [ "$(cat "$wheelhouse/.stamp" 2>/dev/null)" != "$digest" ]; then
    rm -rf "$wheelhouse"
    "$root/.venv/bin/python" -m pip download --quiet --disable-pip-version-check \
      --dest "$wheelhouse" "$root" setuptools wheel
    echo "$digest" > "$wheelhouse/.stamp"
  fi
fi

# The README's first command is tested from a fresh clone with a new virtualenv, offline: from a
# local wheelhouse of what the demo installs (mlgate with the extras the example's mlgate.yml
# needs, and the example's requirements), fetched here once per change of either.
if [ "$extras" = dev ]; then
  example="$root/examples/iris"
  demo_digest=$("$root/scripts/demo-wheelhouse-stamp.sh")
  demo_extras=${demo_digest#*-}
  wheelhouse="$root/.cache/wheelhouse-demo"
  if [ "$(cat "$wheelhouse/.stamp" 2>/dev/null)" != "$demo_digest" ]; then
    rm -rf "$wheelhouse"
    "$root/.venv/bin/python" -m pip download --quiet --disable-pip-version-check \
      --dest "$wheelhouse" "${root}[$demo_extras]" -r "$example/requirements.txt" setuptools wheel
    echo "$demo_digest" > "$wheelhouse/.stamp"
  fi
fi
