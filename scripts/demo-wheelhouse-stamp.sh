#!/usr/bin/env bash
# Prints what the README demo's local wheelhouse (.cache/wheelhouse-demo) must be made for, as
# its .stamp holds it: the digest of pyproject.toml and the example's requirements, then the
# extras the example's mlgate.yml needs. scripts/setup.sh fills the wheelhouse when its stamp
# differs; tests/test_readme_demo.py refuses a stale one with this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
example="$root/examples/iris"
extras=$(cd "$example" && "$root/.venv/bin/mlgate" config extras)
digest=$(cat "$root/pyproject.toml" "$example/requirements.txt" | sha256sum | cut -c1-16)
echo "$digest-$extras"
