#!/usr/bin/env bash
# Screenshot of an HTML report from a real run, for the README: by default the demo's
# (run ./scripts/demo.sh first), written to docs/report.png. Uses Debian's chromium headless
# (scripts/setup.sh dev installs it), with a throwaway profile and HOME so nothing lands in ~.
#   ./scripts/demo.sh && ./scripts/screenshot-report.sh [REPORT_HTML] [OUTPUT_PNG]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
report=${1:-$root/examples/iris/.mlgate/report.html}
output=${2:-$root/docs/report.png}
if [ ! -f "$report" ]; then
  echo "screenshot-report: $report: no report there (run ./scripts/demo.sh first)" >&2
  exit 2
fi
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "screenshot-report: chromium is not installed (scripts/setup.sh dev installs it)" >&2
  exit 2
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
report_path=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
HOME=$scratch XDG_CONFIG_HOME=$scratch/config XDG_CACHE_HOME=$scratch/cache \
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$scratch/profile" --window-size=1100,1500 \
  --screenshot="$scratch/report.png" "file://$report_path" >"$scratch/log" 2>&1 || {
  echo "screenshot-report: chromium failed:" >&2
  tail -n 20 "$scratch/log" >&2
  exit 1
}
if [ ! -s "$scratch/report.png" ]; then
  echo "screenshot-report: chromium wrote no screenshot" >&2
  exit 1
fi
mkdir -p "$(dirname "$output")"
cp "$scratch/report.png" "$output"
echo "screenshot-report: $output"
