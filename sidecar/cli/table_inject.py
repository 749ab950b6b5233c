"""The options of `webhook` and `inject`, one row each; see `sidecar.cli.table`."""

from __future__ import annotations

from typing import Final

from sidecar.cli.options import Option, host_port, resources_json
from sidecar.cli.table import LOG_LEVELS

#: `event-sidecar webhook`: where it serves and with which certificate.
WEBHOOK_OPTIONS: Final = (
    Option(
        "--listen",
        "HOST:PORT to serve HTTPS on (default: loopback only; 0.0.0.0:8443 in a cluster)",
        parse=host_port,
        default=("127.0.0.1", 8443),
        show=None,
    ),
    Option("--tls-cert-file", "PEM certificate chain", default=None, required=True),
    Option("--tls-private-key-file", "PEM private key", default=None, required=True),
    Option(
        "--cert-check-interval",
        "seconds between checks of the certificate files for rotation",
        parse=float,
        default=1.0,
        show=None,
    ),
    Option(
        "--log-level",
        "JSON lines on stderr, from this level",
        choices=LOG_LEVELS,
        default="info",
        show=None,
    ),
)

#: `event-sidecar inject`: what it reads (one of the two is required).
INJECT_SOURCE_OPTIONS: Final = (
    Option(
        "--filename",
        "manifest file (multi-document YAML or JSON), - for stdin",
        short="-f",
        default=None,
    ),
    Option(
        "--emit-policy",
        "instead, print a MutatingAdmissionPolicy and its binding that inject the same sidecar "
        "in the apiserver, without a webhook (Kubernetes >= 1.36)",
        kind="switch",
    ),
)

#: The injected sidecar, for `webhook` and `inject` alike. None is `InjectSettings`' default
#: (`sidecar.inject.settings`, not imported to build the parser: its pydantic models cost
#: start-up time), which the help says.
INJECTION_OPTIONS: Final = (
    Option("--image", "sidecar image (default: this version's image)", default=None),
    Option(
        "--rules-configmap",
        "ConfigMap with the rules (key rules.yaml), in the pod's namespace (default: "
        "event-sidecar-rules)",
        default=None,
    ),
    Option(
        "--native-sidecar",
        "inject as a native sidecar (Kubernetes >= 1.29; the default); 'false' for a classic "
        "container",
        choices=("true", "false"),
        default=None,
    ),
    Option(
        "--log-path",
        "glob of the app's log files, for pods naming neither log-path nor socket (default: "
        "none, the sidecar follows the target container's log through the API)",
        default=None,
    ),
    Option(
        "--sidecar-log-level",
        "the sidecar's own log level (default: info)",
        choices=LOG_LEVELS,
        default=None,
    ),
    Option(
        "--metrics-port",
        "the sidecar's metrics port (the next free one if the pod uses it; default: 9090)",
        parse=int,
        default=None,
    ),
    Option(
        "--sidecar-resources",
        'the sidecar\'s resources, e.g. \'{"requests": {"cpu": "10m"}, "limits": '
        '{"memory": "192Mi"}}\' (default: requests cpu 10m, memory 96Mi; limit memory '
        "192Mi)",
        parse=resources_json,
        default=None,
        metavar="JSON",
    ),
)
