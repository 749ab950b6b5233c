#!/usr/bin/env bash
# Builds a small working cluster from the Go module proxy into a cache folder keyed by version, and
# prints that folder: kube-apiserver, kubectl, kube-controller-manager and kube-scheduler (one
# Kubernetes version, tools/kube), etcd (tools/etcd) and kwok, the simulated node (tools/kwok), with
# kwok's stock "fast" node and pod stages as kwok-stages.yaml. A warm run only checks the cache.
# When KUBEBUILDER_ASSETS names a folder holding the binaries (the envtest convention), that folder
# is printed instead and nothing is built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binaries=(kube-apiserver kubectl kube-controller-manager kube-scheduler etcd kwok)

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  # envtest's folders hold the first three; the cluster tests say so when the others are missing.
  for bin in kube-apiserver kubectl etcd; do
    [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $bin" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the test control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }

k8s_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
kwok_version=$(cd "$here/kwok" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok)
[[ -n "$k8s_version" && -n "$etcd_version" && -n "$kwok_version" ]] || { echo "cannot read versions from tools/*/go.mod" >&2; exit 1; }
# The go.sum files are part of the key, so a dependency change rebuilds.
sum=$(cat "$here"/{kube,etcd,kwok}/go.{mod,sum} | sha256sum | cut -c1-12)
out="${CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-event-sidecar/control-plane}/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version-$sum"

complete=1
for bin in "${binaries[@]}"; do [[ -x "$out/$bin" ]] || complete=0; done
if [[ $complete == 1 && -f "$out/kwok-stages.yaml" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out.tmp"

minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

echo "building etcd $etcd_version into $out" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .)
echo "building kube-apiserver, kubectl, kube-controller-manager, kube-scheduler $k8s_version into $out (15-30 minutes cold)" >&2
# One `go build` per module: Go compiles the packages the binaries share once, in parallel.
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
echo "building kwok $kwok_version into $out (2-4 minutes cold)" >&2
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/" sigs.k8s.io/kwok/cmd/kwok)
# kwok moves nothing without stages: its stock "fast" ones (nodes Ready with a lease heartbeat,
# pods Running at once), from the module's own source.
kwok_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  echo "---"
  cat "$kwok_dir/kustomize/stage/$stage.yaml"
done > "$out.tmp/kwok-stages.yaml"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
