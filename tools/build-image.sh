#!/usr/bin/env bash
# Builds the image from the unchanged Dockerfile with buildah, tags it with the name the manifests
# and the chart use (sidecar.inject.settings.DEFAULT_IMAGE, read from the package, so the name is
# written in one place), and prints that name.
#
#   tools/build-image.sh                # FROM the Dockerfile's default, python:3.11-slim
#   BASE=IMAGE tools/build-image.sh     # FROM another base with Python 3.11 and its venv module
#   BASE=debian tools/build-image.sh    # FROM a stand-in made from Debian packages (see below)
#
# BASE=debian is for machines that reach no container registry (the test machines): mmdebstrap
# makes a minimal Debian 12 root with python3, python3-venv and ca-certificates, imported as
# localhost/event-sidecar-base:python3.11-bookworm (kept, so a second build only checks it). That
# is Debian's Python 3.11 in /usr/bin, not the official image's build in /usr/local.
# PYTHON: the interpreter that reads the image name (default: the repo's .venv, else python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
for tool in buildah podman; do
  command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install buildah podman)" >&2; exit 1; }
done

python=${PYTHON:-$root/.venv/bin/python}
[[ -x "$python" ]] || python=python3
name=$(cd "$root" && "$python" -c 'from sidecar.inject.settings import DEFAULT_IMAGE; print(DEFAULT_IMAGE)')

# The Dockerfile's default, fully qualified: buildah resolves no short names without a
# registries.conf that lists search registries (Debian's lists none).
base=${BASE:-docker.io/library/python:3.11-slim}
if [[ "$base" == debian ]]; then
  base=localhost/event-sidecar-base:python3.11-bookworm
  if ! podman image exists "$base"; then
    command -v mmdebstrap >/dev/null || { echo "mmdebstrap is required for BASE=debian" >&2; exit 1; }
    tar=$(mktemp --suffix=.tar)
    trap 'rm -f "$tar"' EXIT
    echo "making $base from Debian packages" >&2
    mmdebstrap --quiet --variant=minbase \
      --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates bookworm "$tar"
    # The Dockerfile's PATH=/opt/venv/bin:$PATH expands the base's PATH, so the base sets one.
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' "$tar" "$base" >/dev/null
  fi
fi

args=(--pull=missing --tag "$name" --file "$root/Dockerfile" --build-arg "BASE=$base")
# Behind a proxy that re-signs TLS, the build's pip trusts what the host trusts: the host's CA
# bundle, mounted read-only into the RUN steps only (it is not part of the image).
bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f "$bundle" ]] && args+=(--volume "$bundle:$bundle:ro")
echo "building $name FROM $base" >&2
buildah bud --quiet "${args[@]}" "$root" >&2
echo "$name"
