#!/usr/bin/env bash
# What actions/cache's post step does at the end of a job, for the stand-in's queued keys:
# tar + zstd (-T0, as actions/cache on Linux) of the path, stored under the key.
set -euo pipefail
store=${MLGATE_BENCH_CACHE:?MLGATE_BENCH_CACHE is not set}
[ -f "$store/to-save" ] || exit 0
while IFS=$'\t' read -r key path; do
  id=$(printf '%s' "$key" | sha256sum | cut -c1-32)
  if [ -e "$store/$id.tar.zst" ] || [ ! -e "$path" ]; then continue; fi
  tar -P --use-compress-program "zstd -T0" -cf "$store/$id.tar.zst" "$path"
  printf '%s' "$key" > "$store/$id.key"
  echo "saved $key: $(du -sh "$path" | cut -f1) as $(du -h "$store/$id.tar.zst" | cut -f1)"
done < "$store/to-save"
rm "$store/to-save"
