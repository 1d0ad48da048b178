#!/usr/bin/env bash
# Make a real Docker engine available for the container tests, idempotently:
#   1. install Debian's docker.io and debootstrap if missing (apt-get);
#   2. start a dockerd under a state directory unless one already answers there, with
#      --iptables=false --bridge=none so the host firewall and networking are left alone
#      (containers then run with network_mode="host");
#   3. build the base image mlgate/base:bookworm if missing. No image registry is reachable,
#      so it comes from a debootstrap root file system with python3, numpy and scikit-learn
#      as Debian packages (nothing from PyPI inside containers). The root-fs tarball is cached
#      under the state directory, so later runs only `docker import` it.
# The last line on stdout is `DOCKER_HOST=unix://...`; progress goes to stderr.
#   export "$(scripts/docker-engine.sh | tail -n 1)"
# Exit 3: no engine can be started here at all (callers may skip); other non-zero: an error.
# Either way one line on stderr says why. State dir: $MLGATE_DOCKER_DIR
# (default ~/.cache/mlgate/docker); Debian mirror: $MLGATE_DEBIAN_MIRROR.
set -euo pipefail

state=${MLGATE_DOCKER_DIR:-$HOME/.cache/mlgate/docker}
mirror=${MLGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
image=mlgate/base:bookworm
packages=python3,python3-numpy,python3-sklearn
# The cache key is the package list: changing it builds a new tarball instead of reusing one.
rootfs="$state/rootfs-bookworm-$(printf %s "$packages" | sha256sum | cut -c1-12).tar"
sock="$state/docker.sock"
log="$state/setup.log"

say() { echo "docker-engine: $*" >&2; }
die() { # die CODE MESSAGE
  echo "docker-engine: error: $2" >&2
  exit "$1"
}
last_log_line() { grep -v '^\s*$' "$1" 2>/dev/null | tail -n 1 | cut -c1-200; }

mkdir -p "$state" || die 1 "cannot create the state directory $state"
: >"$log"
# Several test runs may call this at once: one sets things up, the others wait, then reuse.
# (dockerd must not inherit this descriptor, or it would hold the lock for its lifetime.)
exec 9>"$state/lock"
flock 9

# Root is needed to install packages and run dockerd; sudo when it works without a password.
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  fi
fi
can_be_root() { [ "$(id -u)" = 0 ] || [ ${#as_root[@]} -gt 0 ]; }

# The engine's /_ping, over the unix socket; python3 is there wherever apt-get is.
answers() {
  [ -S "$sock" ] || return 1
  python3 - "$sock" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
sys.exit(0 if s.recv(64).split(b" ")[1:2] == [b"200"] else 1)
EOF
}

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || [ -f "$rootfs" ] || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die 3 "cannot install ${missing[*]}: no apt-get on this machine"
  can_be_root || die 3 "cannot install ${missing[*]}: not root and no password-less sudo"
  say "installing ${missing[*]} with apt-get"
  "${as_root[@]}" apt-get update >>"$log" 2>&1 ||
    die 3 "apt-get update failed: $(last_log_line "$log")"
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends \
    "${missing[@]}" >>"$log" 2>&1 ||
    die 3 "apt-get install ${missing[*]} failed: $(last_log_line "$log")"
}

start_engine() {
  answers && return 0
  can_be_root || die 3 "cannot start dockerd: not root and no password-less sudo"
  # An engine killed with its session (and its containerd) leaves runtime files behind that can
  # make the next start fail once; clear them and try a second time before giving up.
  local attempt
  for attempt in 1 2; do
    launch_engine && return 0
    say "dockerd did not start (attempt $attempt: $start_problem)"
    "${as_root[@]}" find "$state/exec" -name '*.pid' -delete 2>/dev/null || true
    "${as_root[@]}" rm -f "$state/docker.pid" "$sock"
    sleep 1
  done
  die 3 "dockerd exited at start: $start_problem"
}

start_problem=""
launch_engine() {
  say "starting dockerd under $state"
  # An engine killed with its session leaves its pid file and socket behind; dockerd refuses
  # to start over a pid file, so stale ones go (a live dockerd would have answered above).
  local old_pid old_state
  old_pid=$(cat "$state/docker.pid" 2>/dev/null || true)
  # A killed engine may linger as a zombie until reaped: only a running dockerd counts.
  old_state=$(awk '{print $3}' "/proc/$old_pid/stat" 2>/dev/null || true)
  if [ -n "$old_pid" ] && { [ -z "$old_state" ] || [ "$old_state" = Z ] ||
    [ "$(cat "/proc/$old_pid/comm" 2>/dev/null)" != dockerd ]; }; then
    "${as_root[@]}" rm -f "$state/docker.pid" "$sock"
  fi
  local started=$SECONDS
  # setsid + nohup: the engine outlives this script and the test run's process group, so
  # later runs reuse it. No --iptables, no bridge: the host's firewall and network are not
  # touched.
  "${as_root[@]}" setsid nohup dockerd \
    --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
    --data-root "$state/data" --exec-root "$state/exec" \
    -H "unix://$sock" --pidfile "$state/docker.pid" \
    >"$state/dockerd.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  while ! answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      start_problem=$(grep -i 'level=\(error\|fatal\)\|failed' "$state/dockerd.log" |
        tail -n 1 | cut -c1-200)
      return 1
    fi
    [ $((SECONDS - started)) -lt 60 ] ||
      die 3 "dockerd did not answer on $sock within 60 s (see $state/dockerd.log)"
    sleep 0.2
  done
  # The socket is root's; a non-root caller using sudo needs to reach it too.
  [ "$(id -u)" = 0 ] || "${as_root[@]}" chown "$(id -u)" "$sock"
  say "dockerd answers after $((SECONDS - started)) s"
}

docker_cli() { DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=0 docker "$@"; }

build_base() {
  command -v docker >/dev/null || die 1 "no docker command line (docker.io provides one)"
  docker_cli image inspect "$image" >/dev/null 2>&1 && return 0
  if [ ! -f "$rootfs" ]; then
    say "building the root file system with debootstrap ($packages; a few minutes, once)"
    local root="$state/rootfs.tmp"
    "${as_root[@]}" rm -rf "$root"
    "${as_root[@]}" debootstrap --variant=minbase --include="$packages" bookworm "$root" \
      "$mirror" >>"$log" 2>&1 ||
      die 1 "debootstrap from $mirror failed: $(last_log_line "$log")"
    # Downloaded .debs and package lists are of no use in the image: about 100 MB less.
    "${as_root[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    # Written to a temporary name first, so an interrupted run never leaves a cut tarball.
    "${as_root[@]}" tar -C "$root" -cf "$rootfs.tmp" . || die 1 "cannot write $rootfs"
    mv "$rootfs.tmp" "$rootfs"
    "${as_root[@]}" rm -rf "$root"
  fi
  say "importing $rootfs as $image"
  # An imported image has no configuration: give it a PATH, and Python's output unbuffered so
  # a crashing server's last line reaches the logs.
  docker_cli import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'CMD ["python3"]' \
    "$rootfs" "$image" >>"$log" 2>&1 ||
    die 1 "docker import of $rootfs failed: $(last_log_line "$log")"
}

install_missing
start_engine
build_base
echo "DOCKER_HOST=unix://$sock"
