"""`make demo-cluster` (`python -m demo.cluster`): the example controller on a real node, its log
turned into Events by the sidecar the webhook injected, for people to look at.

Builds (cached) the sidecar's image from the Dockerfile (on the stand-in Debian base) and the
stand-in controller's image, starts the control plane of tests/controlplane.py with one real node
(tests/realnode.py: containerd, runc, CNI, kubelet, kube-proxy; root needed), runs the injection
webhook on the host and registers it, and `kubectl apply -k manifests/example`. The kubelet runs
the injected pod: the stand-in controller prints examples/quota-autoscaler.log to stderr, each
line stamped with the current time as a live controller's would be, and the sidecar reads it
through the pod log API. Then prints `kubectl describe` of a custom resource, `kubectl get events
-A` and the sidecar's per-reason counters, and waits for Ctrl-C with a kubeconfig in place to look
around (`--no-wait` stops at once). Everything started is stopped on exit and the host is left as
it was.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kubernetes import config

from sidecar.inject.settings import DEFAULT_IMAGE
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.realnode import RealNode, build_controller_image, host_address
from tests.test_real_node import (
    EXPECTED_EVENTS,
    NAMESPACE,
    RQA_GROUP,
    Cluster,
    build_sidecar_image,
    install_example_objects,
    metrics_url,
    wait_events,
    wait_running,
)
from tests.test_webhook_e2e import registered, run_webhook, wait_until_injecting


def _counters(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    wanted = ("event_sidecar_events_emitted_total{", "event_sidecar_events_dropped_total{")
    return "\n".join(
        line for line in text.splitlines() if line.startswith(wanted) and not line.endswith(" 0.0")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--no-wait", action="store_true", help="stop once the output is printed")
    args = parser.parse_args(argv)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="event-sidecar-demo-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C even when started in the background of a script (which ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("building the images (cached after the first run)", flush=True)
    images = [build_sidecar_image(), build_controller_image()]
    try:
        with (
            ControlPlane(node_address=host_address()) as cp,
            contextlib.ExitStack() as stack,
        ):
            cp.start_cluster(simulated_node=False)
            with RealNode(cp, images=images) as node:
                cluster = Cluster(cp, node, time.monotonic() - began)
                api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
                stack.callback(api.close)
                manifests = REPO_ROOT / "manifests" / "example"
                cp.kubectl("apply", "-f", str(manifests / "namespace.yaml"))
                install_example_objects(cp)
                with (
                    run_webhook(cp, work / "webhook", f"--image={DEFAULT_IMAGE}") as hook,
                    registered(api, "event-sidecar-demo", hook.url, cp.ca_pem, NAMESPACE),
                ):
                    wait_until_injecting(api, NAMESPACE)
                    print("$ kubectl apply -k manifests/example", flush=True)
                    print(cp.kubectl("apply", "-k", str(manifests)).stdout, flush=True)
                    pod = wait_running(cluster)
                    print(
                        f"cluster up and the injected example 2/2 Running on node "
                        f"{pod['spec']['nodeName']} in {time.monotonic() - began:.0f} s; its "
                        "controller prints examples/quota-autoscaler.log to "
                        "stderr, stamped now",
                        flush=True,
                    )
                    wait_events(cp, EXPECTED_EVENTS, timeout=120)
                    out = cp.kubectl(
                        "describe",
                        f"resourcequotaautoscalers.{RQA_GROUP}",
                        "team-a",
                        "-n",
                        "team-a",
                    ).stdout
                    print(f"\n$ kubectl describe resourcequotaautoscaler team-a -n team-a\n{out}")
                    print(f"$ kubectl get pods -n {NAMESPACE}")
                    print(cp.kubectl("get", "pods", "-n", NAMESPACE).stdout)
                    print(f"$ kubectl get events -A\n{cp.kubectl('get', 'events', '-A').stdout}")
                    url = metrics_url(pod)
                    print(f"the sidecar's counters ({url}):\n{_counters(url)}\n", flush=True)
                    if not args.no_wait:
                        print(
                            f"export KUBECONFIG={cp.kubeconfig}   # to look around "
                            "(kubectl logs, describe pod, ...); Ctrl-C stops it all",
                            flush=True,
                        )
                        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
