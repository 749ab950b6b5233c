#!/usr/bin/env bash
# Builds the helm binary from its Go module (tools/helm, a `tool` directive) into a cache folder
# keyed by Helm's version and a hash of tools/helm/go.mod + go.sum, and prints the binary's path.
# A warm run only checks the cache. HELM set to an executable skips the build and is printed.
# The cache root is the one tools/build-control-plane.sh uses (CONTROL_PLANE_CACHE's parent, or
# $XDG_CACHE_HOME/kube-event-sidecar).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -n "${HELM:-}" ]]; then
  [[ -x "$HELM" ]] || { echo "HELM=$HELM is not executable" >&2; exit 1; }
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm (or set HELM)" >&2; exit 1; }

export CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$here/helm"
helm_version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
[[ -n "$helm_version" && -n "$client_go" ]] || { echo "cannot read versions from tools/helm/go.mod" >&2; exit 1; }
sum=$(cat go.mod go.sum | sha256sum | cut -c1-12)
if [[ -n "${CONTROL_PLANE_CACHE:-}" ]]; then
  root=$(dirname "$CONTROL_PLANE_CACHE")
else
  root="${XDG_CACHE_HOME:-$HOME/.cache}/kube-event-sidecar"
fi
out="$root/helm/helm-$helm_version-$sum"

if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi
mkdir -p "$out.tmp"

# The same version stamps as Helm's own Makefile: the version, and the Kubernetes version that
# `helm template` and `helm lint` assume (client-go v0.X.Y -> 1.X).
k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

echo "building helm $helm_version into $out" >&2
go build -trimpath -ldflags "$ldflags" -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/helm"
