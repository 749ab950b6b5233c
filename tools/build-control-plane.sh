#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (same Kubernetes version) and etcd from the Go module proxy into a
# cache folder keyed by version, and prints that folder. A warm run only checks the cache.
# When KUBEBUILDER_ASSETS names a folder holding the three binaries (the envtest convention), that
# folder is printed instead and nothing is built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for bin in kube-apiserver kubectl etcd; do
    [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $bin" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the test control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }

k8s_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { echo "cannot read versions from tools/*/go.mod" >&2; exit 1; }
# The go.sum files are part of the key, so a dependency change rebuilds.
sum=$(cat "$here/kube/go.mod" "$here/kube/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" | sha256sum | cut -c1-12)
out="${CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-event-sidecar/control-plane}/k8s-$k8s_version-etcd-$etcd_version-$sum"

if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" ]]; then
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
echo "building kube-apiserver and kubectl $k8s_version into $out (10-25 minutes cold)" >&2
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
