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

from sidecar.cli.options import add_options
from sidecar.cli.table_inject import INJECT_SOURCE_OPTIONS, INJECTION_OPTIONS, WEBHOOK_OPTIONS
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from sidecar.inject.settings import InjectSettings


def add_parsers(commands: Any) -> None:
    """Register `webhook` and `inject` on the CLI's subparsers (`argparse._SubParsersAction`)."""
    hook = commands.add_parser(
        "webhook", help="serve the mutating admission webhook that injects the sidecar (TLS)"
    )
    add_options(hook, WEBHOOK_OPTIONS, environ=False)
    _add_injection_options(hook)
    hook.set_defaults(handler=_webhook)

    inject = commands.add_parser(
        "inject", help="add the sidecar to the workloads in manifests (YAML or JSON) for GitOps"
    )
    source = inject.add_mutually_exclusive_group(required=True)
    add_options(source, INJECT_SOURCE_OPTIONS, environ=False)
    _add_injection_options(inject)
    inject.set_defaults(handler=_inject)


def _add_injection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("injected sidecar (pod annotations override these)")
    add_options(group, INJECTION_OPTIONS, environ=False)


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
