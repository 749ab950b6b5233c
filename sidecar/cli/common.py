"""What the commands share: loading rules with their problems reported, connecting to the
cluster with its problem reported, and resolving `--events-api auto`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from sidecar.core.rules import RulesError, RuleSet, load_rules
from sidecar.model import EventsApi, EventsApiChoice

if TYPE_CHECKING:
    from sidecar.kube.api_sink import KubeSink
    from sidecar.runtime.metrics import Metrics
    from sidecar.runtime.sinks import Sink


def load_rules_or_report(path: str, err: TextIO | None = None) -> RuleSet | None:
    """The rules in `path`; or None after printing every problem (the caller exits 2)."""
    try:
        return load_rules(path)
    except RulesError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=err or sys.stderr)
        return None


def connect_or_report(
    kubeconfig: str | None, context: str | None, metrics: Metrics
) -> KubeSink | None:
    """The Kubernetes sink (`kubeconfig` '' or None: in-cluster, else $KUBECONFIG); or None after
    printing what was tried (the caller exits 1)."""
    from sidecar import kube  # noqa: PLC0415 - only a command that writes pays for the client

    try:
        return kube.connect(kubeconfig=kubeconfig or None, context=context, metrics=metrics)
    except kube.KubeConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def chosen_events_api(asked: EventsApiChoice, sink: Sink) -> tuple[EventsApi, str]:
    """The Events API to write to, and why: as asked, or for `auto` what the sink's cluster
    serves and allows (a sink without one says why it writes core/v1)."""
    if asked == "auto":
        return sink.choose_events_api()
    return asked, "as asked"
