# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
# The control-plane tests also need Go (to build kube-apiserver, kubectl and etcd once, cached).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BASE ?=

.PHONY: demo demo-cluster test lint unit system-deps control-plane node image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Replay the embedded example: a quota autoscaler's log -> the Events and metrics it stands for.
demo: $(STAMP)
	$(BIN)/event-sidecar check examples/quota-autoscaler.rules.yaml
	$(BIN)/event-sidecar replay examples/quota-autoscaler.log \
		--rules examples/quota-autoscaler.rules.yaml --host quota-autoscaler-7d9f8-x2x9k --metrics

## The same example on a real node (kubelet built with Go, images built with buildah; cached): the
## webhook injects it, the sidecar reads the controller's stderr through the pod log API. Needs
## root. Ctrl-C stops it all.
demo-cluster: $(STAMP)
	$(BIN)/python -m demo.cluster

## Lint, type-check, check the import layers and run every test (including those against a real kube-apiserver).
test: lint system-deps
	$(BIN)/pytest

## Debian's prometheus (scrapes /metrics in the tests), mtail (the benchmark peer), GNU time
## (the benchmarks' CPU and peak-memory meter), and what builds and runs the image without a
## registry (buildah, podman and runc; mmdebstrap for the stand-in base; see tools/build-image.sh),
## and containerd, which runs the real node's pods (tests/realnode.py).
SYSTEM_PACKAGES := prometheus mtail time buildah podman runc netavark aardvark-dns iptables \
	catatonit mmdebstrap containernetworking-plugins containerd
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "the tests need Debian's$$missing: sudo apt-get install$$missing" >&2; \
			exit 1; \
		fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## Build the image from the Dockerfile with buildah, tagged as the manifests name it. BASE=debian
## builds on a stand-in made from Debian packages, for machines that reach no container registry.
image: $(STAMP)
	BASE=$(BASE) PYTHON=$(BIN)/python tools/build-image.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict sidecar tests bench demo
	$(BIN)/lint-imports

## The cost table of issue 24, beside its peers (CPU per rate, idle CPU, memory and latency of
## `run` following a file beside mtail, and a pod's log beside `kubectl logs -f`); about ten
## minutes, a control plane included; writes its section of BENCHMARKS.md.
.PHONY: cost
cost: $(STAMP)
	$(BIN)/python -m bench.wakeups

## The tests that need no cluster.
unit: $(STAMP)
	$(BIN)/pytest -m "not controlplane"

## Build (or find in the cache) kube-apiserver, kubectl and etcd; prints their folder.
control-plane:
	tools/build-control-plane.sh

## Build (or find in the cache) the real node's kubelet and kube-proxy; prints their folder.
node:
	tools/build-node.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
