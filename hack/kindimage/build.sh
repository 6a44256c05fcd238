#!/usr/bin/env bash
# Builds a kind node image (kindest/node:<kubernetes version>) from source,
# following kind v0.33.0's recipe and versions, offline except for Debian
# packages (debootstrap) and Go modules (the module proxy). Test-only
# infrastructure for machines that cannot pull images; see README.md.
#
# Stages, each cached under $TMBOX_KINDIMAGE_CACHE (default
# ~/.cache/tmbox/kindimage) by a hash of its recipe:
#   rootfs      debootstrap of Debian bookworm with the packages the node needs
#   go-*        containerd, runc, crictl, CNI plugins, etcd, CoreDNS and the
#               Kubernetes binaries, at their pins in hack/kindimage/mods/*
#   local       pause, the kindnet replacement, the iptables wrapper and the
#               in-node runtime wrapper (hack/engine/runtime-wrapper)
#   assemble    component images and the node image (go-containerregistry),
#               images pre-imported into the node's containerd store
#
# Prints the node image reference pinned by digest on stdout,
# e.g. kindest/node:v1.34.4@sha256:…; everything else goes to stderr.
# The output directory (docker archive, OCI layout, image list) is named in
# "$cache/node-latest" and in the image.json next to the archive.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
mods="$here/mods"
cache=${TMBOX_KINDIMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tmbox/kindimage}
mkdir -p "$cache"

log() { echo "kindimage: $*" >&2; }
die() { log "error: $*"; exit 1; }
hash() { sha256sum | cut -c1-16; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

# One build at a time per cache (the stages share the cache's pointer files).
exec 9>"$cache/.lock"
flock -n 9 || { log "waiting for another build.sh on $cache"; flock 9; }

# prune GLOB KEEP: removes what an older recipe left (every GLOB match but
# KEEP). Keys are 16 hex digits: K16 matches one.
K16='????????????????'

prune() {
  local g=$1 keep=$2 p
  for p in $g; do
    [ -e "$p" ] && [ "$p" != "$keep" ] && rm -rf "$p"
  done
  return 0
}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, and containerd for the image import)"
for tool in debootstrap unshare tar gcc go sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

modver() { # module version as required in a go.mod
  awk -v m="$1" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$2"
}
kube=$(modver k8s.io/kubernetes "$repo/hack/tools/go.mod")
[ -n "$kube" ] || die "cannot read the k8s.io/kubernetes pin from hack/tools/go.mod"
[ "$(modver k8s.io/kubernetes "$mods/kube/go.mod")" = "$kube" ] ||
  die "hack/kindimage/mods/kube pins k8s.io/kubernetes $(modver k8s.io/kubernetes "$mods/kube/go.mod"), hack/tools pins $kube: make them agree"
gover=$(go env GOVERSION)

# ---------------------------------------------------------------- rootfs
# kind's base image installs (images/base/Dockerfile): systemd conntrack
# iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz
# fuse-overlayfs nfs-common open-iscsi e2fsprogs bash ca-certificates curl jq
# procps. Left out: fuse-overlayfs (rootless only; containerd-fuse-overlayfs
# is not built either), nfs-common and open-iscsi (network storage, nothing
# here uses it). Added: systemd-sysv (/sbin/init), dbus (systemd's bus for
# the systemd cgroup driver), socat and ebtables (kubeadm's preflight looks
# for them).
suite=bookworm
packages=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat,ebtables
mirror() { # the Debian mirror this machine's apt uses
  local m
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

# rootfs_fixup DIR: what kind's Dockerfile does after installing packages
# (no units enabled but ours, no kmsg in journald), plus what a container
# image must not carry (the build host's resolv.conf, a machine-id).
rootfs_fixup() {
  local d=$1
  find "$d/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$d"/lib/systemd/system/multi-user.target.wants/* "$d"/etc/systemd/system/*.wants/* \
    "$d"/lib/systemd/system/local-fs.target.wants/* "$d"/lib/systemd/system/sockets.target.wants/*udev* \
    "$d"/lib/systemd/system/sockets.target.wants/*initctl* "$d"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$d/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$d/sbin/init"
  rm -rf "$d"/var/cache/apt/* "$d"/var/lib/apt/lists/* "$d"/var/cache/debconf/*-old "$d"/var/log/* \
    "$d"/tmp/* "$d"/var/tmp/* "$d"/usr/share/doc/* "$d"/usr/share/doc-base/* "$d"/usr/share/man/* \
    "$d"/usr/share/info/* "$d"/usr/share/locale/* "$d"/run/* "$d"/dev/* "$d"/proc/* "$d"/sys/*
  : >"$d/etc/resolv.conf"
  : >"$d/etc/machine-id"
  rm -f "$d/etc/hostname" "$d/var/lib/dbus/machine-id"
}

stage_rootfs() {
  local m key out start
  m=$(mirror)
  key=$( { echo "$suite $packages $m"; debootstrap --version; declare -f rootfs_fixup; } | hash)
  out="$cache/rootfs-$suite-$key.tar"
  echo "$out" >"$cache/.rootfs-path"
  [ -f "$out" ] && { log "rootfs: cached $out"; return 0; }
  start=$(now)
  rm -rf "$out.d" && mkdir -p "$out.d"
  log "rootfs: debootstrap $suite from $m"
  # A private mount namespace keeps debootstrap's /proc and /sys mounts of
  # the target away from the host's mount table.
  unshare -m --propagation private -- debootstrap --variant=minbase --include="$packages" \
    "$suite" "$out.d" "$m" >"$out.log" 2>&1 || { tail -n 30 "$out.log" >&2; die "debootstrap failed; log: $out.log"; }
  rootfs_fixup "$out.d"
  tar -C "$out.d" --numeric-owner --sort=name --xattrs --xattrs-include='security.capability' -cf "$out.tmp" .
  rm -rf "$out.d" && mv "$out.tmp" "$out"
  prune "$cache/rootfs-$suite-$K16.tar" "$out"
  prune "$cache/rootfs-$suite-$K16.tar.log" "$out.log"
  log "rootfs: built in $(took "$start"): $out ($(du -h "$out" | cut -f1))"
}

# ---------------------------------------------------------------- Go tools
# gobuild NAME MODULE-DIR CGO TAGS LDFLAGS EXTRA PKG... builds the packages
# into $cache/bin/NAME-<key>/ (one binary per package; EXTRA is e.g. "-o etcd"
# for a single package whose binary name is not the last path element). The
# key covers the module's go.mod/go.sum, the flags and the Go version.
gobuild() {
  local name=$1 dir=$2 cgo=$3 tags=$4 ldflags=$5 extra=$6; shift 6
  local key out start
  key=$( { cat "$dir/go.mod" "$dir/go.sum"; echo "$cgo|$tags|$ldflags|$extra|$*|$gover"; } | hash)
  out="$cache/bin/$name-$key"
  echo "$out" >"$cache/.bin-$name"
  [ -f "$out/.done" ] && { log "$name: cached $out"; return 0; }
  start=$(now)
  rm -rf "$out" && mkdir -p "$out"
  local o="$out/"
  [ -n "$extra" ] && o="$out/$extra"
  (cd "$dir" && CGO_ENABLED=$cgo GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$o" "$@") ||
    die "$name: go build failed"
  touch "$out/.done"
  prune "$cache/bin/$name-$K16" "$out"
  log "$name: built in $(took "$start"): $(cd "$out" && echo *)"
}

stage_go() {
  local minor=${kube#v1.}; minor=${minor%%.*}
  local vflags=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    # A fixed build date keeps rebuilt binaries byte-identical.
    vflags+=" -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  gobuild kube "$mods/kube" 0 "" "$vflags" "" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy

  local cv cvf
  cv=$(modver github.com/containerd/containerd/v2 "$mods/containerd/go.mod")
  cvf="-X github.com/containerd/containerd/v2/version.Version=$cv -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
  # As containerd's Makefile and kind build them: containerd and ctr with
  # cgo, the shim without; no optional snapshotters.
  gobuild containerd "$mods/containerd" 1 "no_aufs no_zfs no_btrfs no_devmapper" "$cvf" "" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr
  gobuild containerd-shim "$mods/containerd" 0 "no_aufs no_zfs no_btrfs no_devmapper" "$cvf" "" \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2

  local rv
  rv=$(modver github.com/opencontainers/runc "$mods/runc/go.mod")
  # runc needs cgo (nsenter) and libseccomp-dev + pkg-config (seccomp tag).
  pkg-config --exists libseccomp || die "runc needs libseccomp-dev and pkg-config (apt-get install libseccomp-dev pkg-config)"
  gobuild runc "$mods/runc" 1 "seccomp urfave_cli_no_docs" "-X main.version=${rv#v} -X main.gitCommit=$rv" "" \
    github.com/opencontainers/runc

  local crv
  crv=$(modver sigs.k8s.io/cri-tools "$mods/crictl/go.mod")
  gobuild crictl "$mods/crictl" 0 "" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$crv" "" \
    sigs.k8s.io/cri-tools/cmd/crictl

  local cniv p=github.com/containernetworking/plugins/plugins
  cniv=$(modver github.com/containernetworking/plugins "$mods/cniplugins/go.mod")
  gobuild cni-plugins "$mods/cniplugins" 0 "" "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cniv" "" \
    $p/main/bridge $p/main/loopback $p/main/ptp $p/ipam/host-local $p/meta/portmap

  local ev
  ev=$(modver go.etcd.io/etcd/server/v3 "$mods/etcd/go.mod")
  gobuild etcd "$mods/etcd" 0 "" "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ev" etcd \
    go.etcd.io/etcd/server/v3

  local dv
  dv=$(modver github.com/coredns/coredns "$mods/coredns/go.mod")
  gobuild coredns "$mods/coredns" 0 "" "-X github.com/coredns/coredns/coremain.GitCommit=$dv" "" \
    github.com/coredns/coredns
}

# ---------------------------------------------------------------- local
# pause (C, static, like upstream's), the kindnet replacement and the
# iptables wrapper (Go, this repository's module), and the in-node runtime
# wrapper from hack/engine.
stage_local() {
  local key out start srcs
  srcs=("$here/pause/pause.c" "$here"/kindnet/*.go "$here"/iptables-wrapper/*.go "$repo/go.mod" "$repo/go.sum")
  local wrapper_src=("$repo"/hack/engine/runtime-wrapper/*.go)
  [ -e "${wrapper_src[0]}" ] || die "hack/engine/runtime-wrapper is missing: the node's runc wrapper is built from it"
  key=$( { cat "${srcs[@]}" "${wrapper_src[@]}"; gcc --version | head -n1; echo "$gover"; declare -f stage_local; } | hash)
  out="$cache/bin/local-$key"
  echo "$out" >"$cache/.bin-local"
  [ -f "$out/.done" ] && { log "local: cached $out"; return 0; }
  start=$(now)
  rm -rf "$out" && mkdir -p "$out"
  gcc -Os -static -Wall -Werror -o "$out/pause" "$here/pause/pause.c" && strip "$out/pause"
  (cd "$repo" && export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" &&
    go build -trimpath -ldflags "-s -w" -o "$out/kindnetd" ./hack/kindimage/kindnet &&
    go build -trimpath -ldflags "-s -w" -o "$out/iptables-wrapper" ./hack/kindimage/iptables-wrapper &&
    go build -trimpath -ldflags "-s -w" -o "$out/runtime-wrapper" ./hack/engine/runtime-wrapper) ||
    die "local: go build failed"
  touch "$out/.done"
  prune "$cache/bin/local-$K16" "$out"
  log "local: built in $(took "$start"): $(cd "$out" && echo *)"
}

# ---------------------------------------------------------------- assemble
stage_assemble() {
  local rootfs kinddir key out start inputs
  rootfs=$(cat "$cache/.rootfs-path")
  [ -f "$rootfs" ] || die "rootfs stage produced nothing"
  kinddir=$(cd "$repo" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
  [ -d "$kinddir/images/base/files" ] || die "kind module not in the module cache (go mod download sigs.k8s.io/kind)"
  inputs="$rootfs"
  for b in kube containerd containerd-shim runc crictl cni-plugins etcd coredns local; do
    inputs+=" $(cat "$cache/.bin-$b")"
  done
  key=$( { echo "$inputs $kube $kinddir"; cat "$here"/assemble/*.go "$here"/files/*; } | hash)
  out="$cache/node-$kube-$key"
  if [ ! -f "$out/image.json" ]; then
    start=$(now)
    rm -rf "$out.tmp"
    local bins=(--bin "$(cat "$cache/.bin-kube")")
    for b in containerd containerd-shim runc crictl cni-plugins etcd coredns local; do
      bins+=(--bin "$(cat "$cache/.bin-$b")")
    done
    (cd "$repo" && go run ./hack/kindimage/assemble \
      --rootfs "$rootfs" --kind "$kinddir" --files "$here/files" --kubernetes "$kube" \
      --out "$out.tmp" --final "$out" "${bins[@]}") >&2 || die "assemble failed"
    rm -rf "$out" && mv "$out.tmp" "$out"
    prune "$cache/node-*-$K16" "$out"
    prune "$cache/node-*-$K16.tmp" ""
    log "assemble: built in $(took "$start"): $out"
  else
    log "assemble: cached $out"
  fi
  ln -sfn "$out" "$cache/node-latest"
  sed -n 's/.*"ref": *"\([^"]*\)".*/\1/p' "$out/image.json" | head -n1
}

total=$(now)
if [ "$#" -gt 0 ]; then # development: run only the named stages
  for s in "$@"; do
    case $s in rootfs|go|local|assemble) "stage_$s" ;; *) die "unknown stage $s (rootfs, go, local, assemble)" ;; esac
  done
  exit 0
fi
# debootstrap waits mostly on the mirror; it runs beside the Go builds.
stage_rootfs &
rootfs_pid=$!
stage_go
stage_local
wait "$rootfs_pid" || die "rootfs stage failed"
ref=$(stage_assemble)
log "done in $(took "$total"): $ref"
echo "$ref"
