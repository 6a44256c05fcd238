#!/usr/bin/env bash
# dockerd.sh start|env|stop [--run-dir DIR] [--owner PID] | wrapper OUT
#
# A test container engine (Debian's dockerd) in the CURRENT network
# namespace only — which must be loopback-only (plus docker's own bridges):
# run it from a shell inside `hack/netns-exec`. See hack/engine/README.md.
#
#   start    start the engine (or find it running); prints `export DOCKER_HOST=…`
#            (eval "$(hack/engine/dockerd.sh start)"). The engine stops by
#            itself when the calling process (default: this script's parent,
#            or --owner PID; 0 for never) exits.
#   env      print `export DOCKER_HOST=…` of the running engine
#   stop     stop it; fails unless its socket, processes and mounts are gone
#   wrapper  build the runtime wrapper (hack/engine/runtime-wrapper) at OUT
#
# It builds hack/engine (stdlib + internal/testengine, offline) into the
# engine cache and runs it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${TMBOX_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tmbox/engine}
mkdir -p "$cache/bin"
bin="$cache/bin/tmbox-engine"
tmp=$(mktemp "$cache/bin/.tmbox-engine.XXXXXX")
if ! (cd "$root" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOPROXY=off GOTOOLCHAIN=local \
      go build -trimpath -o "$tmp" ./hack/engine); then
  rm -f "$tmp"; echo "dockerd.sh: building hack/engine failed" >&2; exit 1
fi
mv -f "$tmp" "$bin"
export TMBOX_ENGINE_ROOT="$root" TMBOX_ENGINE_OWNER="${TMBOX_ENGINE_OWNER:-$PPID}"
exec "$bin" "$@"
