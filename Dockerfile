# syntax=docker/dockerfile:1
# The event-sidecar image: the sidecar (`run`), the injection webhook (`webhook`) and the offline
# tools (`replay`, `check`, `inject`) in one small image.
#
#   docker build -t event-sidecar:dev .
#
# Stage 1 builds wheels for the package and every dependency; stage 2 installs them, offline, into
# a venv. The final image runs as a numeric non-root user (so `runAsNonRoot` can be verified
# without a passwd lookup) and never writes at run time: bytecode is compiled at install time,
# PYTHONDONTWRITEBYTECODE stops Python from trying again, and nothing uses /tmp, so it runs with
# `readOnlyRootFilesystem: true`. tools/build-image.sh builds it (`make image`); tests/test_image.py
# runs the result locked down.

# BASE: the official Python image by default; any image with Python 3.11 at `python` on PATH and
# its venv module works (the tests build on a stand-in made from Debian packages, since no
# registry but the package registries is reachable there: tools/build-image.sh).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN pip wheel --wheel-dir /wheels .

FROM ${BASE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
# One layer, trimmed before it is committed: pip and setuptools are not needed at run time, and
# kubernetes.aio (an asyncio copy of the whole generated client, about 68 MB) is never imported:
# the sidecar's one Kubernetes module uses kubernetes.client and kubernetes.config, and makes its
# asynchronous requests with aiohttp (tests/test_image.py runs every command on the result).
# Bytecode is compiled here, explicitly: the root filesystem is read-only at run time, so without
# it every start would compile the client's modules again in memory.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --no-compile --find-links /wheels kube-event-sidecar \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio \
    && python -m compileall -q -j 0 /opt/venv/lib \
    && /opt/venv/bin/event-sidecar --version
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532 is distroless' "nonroot"; the injected sidecar's securityContext uses the same UID/GID.
USER 65532:65532
WORKDIR /
EXPOSE 9090 8443
ENTRYPOINT ["event-sidecar"]
CMD ["--help"]
