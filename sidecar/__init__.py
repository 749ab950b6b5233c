"""kube-event-sidecar: Kubernetes Events from a legacy controller's log lines."""

__version__ = "0.1.0"
