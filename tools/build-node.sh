#!/usr/bin/env bash
# Builds the test node's kubelet and kube-proxy from the Go module proxy (tools/node: the same
# Kubernetes version and staging replaces as tools/kube, the control plane's module) into a cache
# folder next to the control plane's, keyed by version and by tools/node's go.mod and go.sum, and
# prints that folder. A warm run only checks the cache. containerd, runc and the CNI plugins come
# from Debian (make system-deps).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binaries=(kubelet kube-proxy)

command -v go >/dev/null || { echo "go is required to build the test node" >&2; exit 1; }
k8s_version=$(cd "$here/node" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
[[ -n "$k8s_version" ]] || { echo "cannot read the Kubernetes version from tools/node/go.mod" >&2; exit 1; }
kube_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
# A kubelet newer or older than the apiserver is a skew the tests do not mean to test.
[[ "$k8s_version" == "$kube_version" ]] || {
  echo "tools/node pins k8s.io/kubernetes $k8s_version, tools/kube $kube_version: keep them equal" >&2
  exit 1
}
sum=$(cat "$here"/node/go.{mod,sum} | sha256sum | cut -c1-12)
out="${CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-event-sidecar/control-plane}/node-k8s-$k8s_version-$sum"

complete=1
for bin in "${binaries[@]}"; do [[ -x "$out/$bin" ]] || complete=0; done
if [[ $complete == 1 ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out.tmp"

minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
# -mod=readonly: a build that would need new go.sum lines fails rather than changing the key.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
echo "building kubelet and kube-proxy $k8s_version into $out (a few minutes with a warm Go cache)" >&2
(cd "$here/node" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
