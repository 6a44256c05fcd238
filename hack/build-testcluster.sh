#!/usr/bin/env bash
# Builds the test cluster's binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) from the module
# proxy at the versions pinned in hack/tools, and caches them outside the repo
# under a directory named after those versions, so only the first run pays the
# cold build (~6-12 min on 2 cores).
#
# Prints the binary directory on stdout. Override the cache root with
# TMBOX_TESTCLUSTER_CACHE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/tools"

modver() { # module version as required in a go.mod
  awk -v m="$1" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$2"
}
kube=$(modver k8s.io/kubernetes "$tools/go.mod")
etcd=$(modver go.etcd.io/etcd/server/v3 "$tools/go.mod")
kwok=$(modver sigs.k8s.io/kwok "$tools/kwok/go.mod")
[ -n "$kube" ] && [ -n "$etcd" ] && [ -n "$kwok" ] || { echo "cannot read pinned versions from $tools" >&2; exit 1; }

cache_root=${TMBOX_TESTCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tmbox/testcluster}
# The key also covers this script and the go.sum files, so a changed pin or
# build recipe never reuses stale binaries.
key=$(cat "$0" "$tools/go.sum" "$tools/kwok/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/kube-$kube-etcd-$etcd-kwok-$kwok-$key"

bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
complete=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || complete=0; done
[ -f "$out/stages/pod-ready.yaml" ] || complete=0
if [ "$complete" = 1 ]; then echo "$out"; exit 0; fi

mkdir -p "$out.tmp"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${kube#v1.}; minor=${minor%%.*}
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
vflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date"
done
start=$(date +%s)
(
  cd "$tools"
  go build -trimpath -ldflags "-s -w $vflags" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" ./etcd
)
(cd "$tools/kwok" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
# kwok needs Stage objects to drive nodes and pods; take its own fast stages
# (node initialize + lease heartbeat, pod ready/complete/delete).
stagedir=$(cd "$tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
mkdir -p "$out.tmp/stages"
cp "$stagedir"/node/fast/node-initialize.yaml "$stagedir"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
   "$stagedir"/pod/fast/pod-ready.yaml "$stagedir"/pod/fast/pod-complete.yaml "$stagedir"/pod/fast/pod-delete.yaml "$out.tmp/stages/"
chmod -R u+w "$out.tmp/stages"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built test cluster binaries in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
