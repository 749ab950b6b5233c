"""`event-sidecar webhook` and `inject`: their flags, and turning them into settings.

Both share one set of injection flags, so the offline `inject` produces exactly what the webhook
would in a cluster started with the same flags.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from sidecar.cli.options import host_port
from sidecar.cli.table import LOG_LEVELS
from sidecar.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from sidecar.heap import freeze_startup_objects
from sidecar.inject.annotations import Resources
from sidecar.inject.settings import InjectSettings
from sidecar.logs import configure_logging


def add_parsers(commands: Any) -> None:
    """Register `webhook` and `inject` on the CLI's subparsers (`argparse._SubParsersAction`)."""
    hook = commands.add_parser(
        "webhook", help="serve the mutating admission webhook that injects the sidecar (TLS)"
    )
    hook.add_argument(
        "--listen",
        default="127.0.0.1:8443",
        type=host_port,
        help="HOST:PORT to serve HTTPS on (default: loopback only; 0.0.0.0:8443 in a cluster)",
    )
    hook.add_argument("--tls-cert-file", required=True, help="PEM certificate chain")
    hook.add_argument("--tls-private-key-file", required=True, help="PEM private key")
    hook.add_argument(
        "--cert-check-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the certificate files for rotation",
    )
    hook.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="JSON lines on stderr, from this level",
    )
    _add_injection_options(hook)
    hook.set_defaults(handler=_webhook)

    inject = commands.add_parser(
        "inject", help="add the sidecar to the workloads in manifests (YAML or JSON) for GitOps"
    )
    source = inject.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "-f",
        "--filename",
        help="manifest file (multi-document YAML or JSON), - for stdin",
    )
    source.add_argument(
        "--emit-policy",
        action="store_true",
        help="instead, print a MutatingAdmissionPolicy and its binding that inject the same "
        "sidecar in the apiserver, without a webhook (Kubernetes >= 1.36)",
    )
    _add_injection_options(inject)
    inject.set_defaults(handler=_inject)


def _add_injection_options(parser: argparse.ArgumentParser) -> None:
    defaults = InjectSettings()
    group = parser.add_argument_group("injected sidecar (pod annotations override these)")
    group.add_argument("--image", default=defaults.image, help="sidecar image")
    group.add_argument(
        "--rules-configmap",
        default=defaults.rules_configmap,
        help="ConfigMap with the rules (key rules.yaml), in the pod's namespace",
    )
    group.add_argument(
        "--native-sidecar",
        choices=("true", "false"),
        default="true" if defaults.native_sidecar else "false",
        help="inject as a native sidecar (Kubernetes >= 1.29); 'false' for a classic container",
    )
    group.add_argument(
        "--log-path",
        default=defaults.log_path,
        help="glob of the app's log files, for pods naming neither log-path nor socket "
        "(default: none, the sidecar follows the target container's log through the API)",
    )
    group.add_argument(
        "--sidecar-log-level",
        default=defaults.log_level,
        choices=LOG_LEVELS,
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        default=defaults.metrics_port,
        help="the sidecar's metrics port (the next free one if the pod uses it)",
    )
    group.add_argument(
        "--sidecar-resources",
        type=resources_json,
        default=defaults.resources,
        metavar="JSON",
        help='the sidecar\'s resources, e.g. \'{"requests": {"cpu": "10m"}, "limits": '
        '{"memory": "192Mi"}}\' (default: requests cpu 10m, memory 96Mi; limit memory 192Mi)',
    )


def resources_json(text: str) -> dict[str, dict[str, str]]:
    """`--sidecar-resources`: the JSON a Helm chart renders with `toJson`, checked like the pod's
    `resources` annotation, so that a typo fails at start-up rather than in every injected pod."""
    try:
        return Resources.model_validate_json(text).to_container()
    except ValidationError as error:
        raise argparse.ArgumentTypeError(
            'expected {"requests": {NAME: QUANTITY}, "limits": {NAME: QUANTITY}}: '
            + "; ".join(e["msg"] for e in error.errors())
        ) from None


def _settings(args: argparse.Namespace) -> InjectSettings:
    return InjectSettings(
        image=args.image,
        rules_configmap=args.rules_configmap,
        native_sidecar=args.native_sidecar == "true",
        log_path=args.log_path,
        log_level=args.sidecar_log_level,
        metrics_port=args.metrics_port,
        resources=args.sidecar_resources,
    )


def _webhook(args: argparse.Namespace) -> int:
    from sidecar.inject.webhook import WebhookSettings, serve  # noqa: PLC0415 - aiohttp on demand

    configure_logging(args.log_level)
    host, port = args.listen
    settings = WebhookSettings(
        cert_file=args.tls_cert_file,
        key_file=args.tls_private_key_file,
        host=host,
        port=port,
        reload_interval=args.cert_check_interval,
        inject=_settings(args),
    )
    registry = CollectorRegistry()
    freeze_startup_objects()
    try:
        asyncio.run(serve(settings, registry))
    except OSError as error:  # unreadable certificate, port in use
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _inject(args: argparse.Namespace) -> int:
    if args.emit_policy:
        from sidecar.inject.policy import dump_policy  # noqa: PLC0415

        sys.stdout.write(dump_policy(_settings(args)))
        return EXIT_OK
    from sidecar.inject.manifests import InjectReport, inject_text  # noqa: PLC0415

    try:
        if args.filename == "-":
            text = sys.stdin.read()
        else:
            with open(args.filename, encoding="utf-8") as f:  # noqa: PTH123
                text = f.read()
    except OSError as error:
        print(f"error: cannot read {args.filename}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    report = InjectReport()
    try:
        output = inject_text(text, _settings(args), report)
    except (ValueError, yaml.YAMLError) as error:  # json.JSONDecodeError is a ValueError
        print(f"error: {args.filename}: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(output)
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_USAGE if report.problems else EXIT_OK
