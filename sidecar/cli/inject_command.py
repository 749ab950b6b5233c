"""`event-sidecar webhook` and `inject`: their flags, and turning them into settings.

Both share one set of injection flags, so the offline `inject` produces exactly what the webhook
would in a cluster started with the same flags. The flags default to None (meaning "the
`InjectSettings` default") so that building the parser, which every command does, does not import
the injection package (its pydantic models); the handlers import what they use.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from sidecar.cli.options import host_port
from sidecar.cli.table import LOG_LEVELS
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from sidecar.inject.settings import InjectSettings


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
    group = parser.add_argument_group("injected sidecar (pod annotations override these)")
    group.add_argument("--image", help="sidecar image (default: this version's image)")
    group.add_argument(
        "--rules-configmap",
        help="ConfigMap with the rules (key rules.yaml), in the pod's namespace "
        "(default: event-sidecar-rules)",
    )
    group.add_argument(
        "--native-sidecar",
        choices=("true", "false"),
        help="inject as a native sidecar (Kubernetes >= 1.29; the default); 'false' for a "
        "classic container",
    )
    group.add_argument(
        "--log-path",
        help="glob of the app's log files, for pods naming neither log-path nor socket "
        "(default: none, the sidecar follows the target container's log through the API)",
    )
    group.add_argument(
        "--sidecar-log-level",
        choices=LOG_LEVELS,
        help="the sidecar's own log level (default: info)",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        help="the sidecar's metrics port (the next free one if the pod uses it; default: 9090)",
    )
    group.add_argument(
        "--sidecar-resources",
        type=resources_json,
        metavar="JSON",
        help='the sidecar\'s resources, e.g. \'{"requests": {"cpu": "10m"}, "limits": '
        '{"memory": "192Mi"}}\' (default: requests cpu 10m, memory 96Mi; limit memory 192Mi)',
    )


def resources_json(text: str) -> dict[str, dict[str, str]]:
    """`--sidecar-resources`: the JSON a Helm chart renders with `toJson`, checked like the pod's
    `resources` annotation, so that a typo fails at start-up rather than in every injected pod."""
    from pydantic import ValidationError  # noqa: PLC0415 - only when the flag is given

    from sidecar.inject.annotations import Resources  # noqa: PLC0415

    try:
        return Resources.model_validate_json(text).to_container()
    except ValidationError as error:
        raise argparse.ArgumentTypeError(
            'expected {"requests": {NAME: QUANTITY}, "limits": {NAME: QUANTITY}}: '
            + "; ".join(e["msg"] for e in error.errors())
        ) from None


def _settings(args: argparse.Namespace) -> InjectSettings:
    """The injection settings: `InjectSettings`' defaults, with the flags that were given."""
    from sidecar.inject.settings import InjectSettings  # noqa: PLC0415 - per command

    given = {
        "image": args.image,
        "rules_configmap": args.rules_configmap,
        "native_sidecar": None if args.native_sidecar is None else args.native_sidecar == "true",
        "log_path": args.log_path,
        "log_level": args.sidecar_log_level,
        "metrics_port": args.metrics_port,
        "resources": args.sidecar_resources,
    }
    return InjectSettings(**{name: value for name, value in given.items() if value is not None})


def _webhook(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - per command, see the module's docstring

    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from sidecar.inject.webhook import WebhookSettings, serve  # noqa: PLC0415
    from sidecar.runtime.heap import freeze_startup_objects  # noqa: PLC0415
    from sidecar.runtime.selflog import configure_logging  # noqa: PLC0415

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
        from sidecar.inject.policy import dump_policy  # noqa: PLC0415 - per command

        sys.stdout.write(dump_policy(_settings(args)))
        return EXIT_OK
    import yaml  # noqa: PLC0415 - per command, see the module's docstring

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
