"""`make demo-cluster`: the example controller in a small working cluster, its log turned into
Events by the injected sidecar, for people to look at.

Builds (cached) and starts the cluster of tests/controlplane.py (kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, kwok), runs the injection webhook, applies
manifests/example (namespace, rules ConfigMap, RBAC, the Deployment), lets the controller-manager,
scheduler and kwok run the pod, runs its sidecar container locally as the kubelet would
(tests/kubelet.py), and plays examples/quota-autoscaler.log as the controller container's
stderr (the CRI log kwok serves). Then prints `kubectl describe` of a custom resource, `kubectl
get events -A` and the sidecar's per-reason counters, and waits for Ctrl-C with a kubeconfig in
place to look around (`--no-wait` stops at once). Everything started is stopped on exit.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kubernetes import config

from sidecar.inject import SIDECAR_NAME
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.kubelet import prepare
from tests.test_cluster_e2e import (
    CONTAINER,
    NAMESPACE,
    RQA_GROUP,
    append_cri,
    cluster_logs,
    install_rqa,
    running_pod,
)
from tests.test_webhook_e2e import registered, run_webhook, wait_until_injecting

TEAMS = ("team-a", "team-b", "team-c")
EXAMPLE_LOG = REPO_ROOT / "examples" / "quota-autoscaler.log"


def _grant_teams(cp: ControlPlane) -> None:
    """The example's objects live in the teams' namespaces: let the sidecar write Events and
    look objects up there (one RoleBinding per namespace, as rolebinding-events.yaml says)."""
    for team in TEAMS:
        cp.kubectl("create", "namespace", team)
        for role in ("event-sidecar-events", "event-sidecar-lookup"):
            cp.kubectl(
                "create", "rolebinding", role, "-n", team, f"--clusterrole={role}",
                f"--serviceaccount={NAMESPACE}:event-sidecar",
            )  # fmt: skip


def _counters(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
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
    logs = work / "logs"
    logs.mkdir()
    for name in ("controller.log", "controller-previous.log"):
        (logs / name).touch()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C even when started in the background of a script (which ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with ControlPlane() as cp:
        cp.start_cluster([cluster_logs(logs)])
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "example" / "namespace.yaml"))
        _grant_teams(cp)
        install_rqa(cp, [(team, team) for team in TEAMS])
        with (
            run_webhook(cp, work / "webhook") as hook,
            registered(api, "event-sidecar-demo", hook.url, cp.ca_pem, NAMESPACE),
        ):
            wait_until_injecting(api, NAMESPACE)
            cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
            pod = running_pod(cp)
        [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
        port = int(sidecar["ports"][0]["containerPort"])
        container = prepare(cp, api, pod, SIDECAR_NAME, work / "kubelet")
        proc = container.start(work / "sidecar.log")
        try:
            took = time.monotonic() - began
            print(
                f"cluster up and the example running in {took:.0f} s; playing "
                f"{EXAMPLE_LOG.name} as the {CONTAINER!r} container's stderr",
                flush=True,
            )
            append_cri(logs / "controller.log", *EXAMPLE_LOG.read_text().splitlines())
            time.sleep(8)  # the sidecar reads and writes within a second or two
            out = cp.kubectl(
                "describe", f"resourcequotaautoscalers.{RQA_GROUP}", "team-a", "-n", "team-a"
            ).stdout
            print(f"\n$ kubectl describe resourcequotaautoscaler team-a -n team-a\n{out}")
            print(f"$ kubectl get events -A\n{cp.kubectl('get', 'events', '-A').stdout}")
            print(f"the sidecar's counters (:{port}/metrics):\n{_counters(port)}\n")
            if not args.no_wait:
                print(f"export KUBECONFIG={cp.kubeconfig}   # to look around; Ctrl-C stops it all")
                print(f"the sidecar's own log: {work / 'sidecar.log'}", flush=True)
                signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            proc.terminate()
            proc.wait(30)
            api.close()
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
