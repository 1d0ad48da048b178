#!/usr/bin/env bash
# The restore half of the actions/cache stand-in (cache/action.yml): entries are
# $MLGATE_BENCH_CACHE/<id>.tar.zst (tar of an absolute path, zstd as actions/cache uses on
# Linux) beside <id>.key holding the key.
set -euo pipefail
store=${MLGATE_BENCH_CACHE:?MLGATE_BENCH_CACHE is not set}
mkdir -p "$store"
entry_of() { printf '%s' "$1" | sha256sum | cut -c1-32; }
found="" hit=false
if [ -f "$store/$(entry_of "$KEY").tar.zst" ]; then
  found="$store/$(entry_of "$KEY")" hit=true
else
  while IFS= read -r prefix; do
    [ -n "$prefix" ] || continue
    # the newest entry whose key starts with the prefix, as actions/cache picks
    while IFS= read -r meta; do
      if [[ "$(cat "$meta")" == "$prefix"* ]]; then found=${meta%.key}; break 2; fi
    done < <(ls -t "$store"/*.key 2>/dev/null)
  done <<< "$RESTORE_KEYS"
fi
if [ -n "$found" ]; then
  tar -P --use-compress-program "zstd -d" -xf "$found.tar.zst"
  echo "restored $(cat "$found.key") into $CACHE_PATH"
else
  echo "no cache entry for $KEY"
fi
echo "cache-hit=$hit" >> "$GITHUB_OUTPUT"
# actions/cache saves in its post step only when the key was not hit exactly.
if [ "$hit" != true ]; then printf '%s\t%s\n' "$KEY" "$CACHE_PATH" >> "$store/to-save"; fi
