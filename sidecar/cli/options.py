"""Options written once: one row per option, from which the parser and the settings are derived.

A row says the flag, how a string becomes a value (the same for the flag and its environment
variable), the help, and which `DaemonSettings` fields it sets; its default is that field's
default, so the reason for each default is written once, beside the field in
`sidecar.core.settings`.
Adding an option to `run` is adding a row (and, if it is a new setting, the settings field).

Every row of `run` can also be given as `SIDECAR_<OPTION>` (upper case, dashes as underscores),
because a sidecar is configured in a pod spec, where env entries are easier to patch than an
argument list. A flag wins over its variable, a repeated flag included: `--file a` with
`SIDECAR_FILE=b,c` reads only `a`. Variables are read when the command runs (`resolve`), never
while the parser is built, so a bad one breaks only `run` and nothing is remembered between calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sidecar.core.addresses import AddressError, format_host_port, parse_host_port
from sidecar.core.settings import DaemonSettings

ENV_PREFIX: Final = "SIDECAR_"
#: How booleans are spelt in environment variables; anything else is a usage error.
_BOOLEANS: Final = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off", ""), False),
}


class _FromSettings:
    """The marker default: take the settings field's default."""

    def __repr__(self) -> str:
        return "FROM_SETTINGS"


FROM_SETTINGS: Final = _FromSettings()


@dataclass(frozen=True, slots=True)
class Option:
    """One command-line option, its environment variable, and where its value goes."""

    flag: str
    help: str
    #: One string (a flag's argument, an environment value, one list item) to its value.
    parse: Callable[[str], Any] = str
    #: `value`: one value; `list`: a repeatable flag (comma-separated in the environment);
    #: `switch`: a flag without an argument (a boolean in the environment).
    kind: Literal["value", "list", "switch"] = "value"
    choices: tuple[str, ...] | None = None
    #: The `DaemonSettings` fields it sets (`section.field`, or `field` at the top); none for an
    #: option the command itself reads (`--rules`, `--kubeconfig`).
    to: tuple[str, ...] = ()
    #: Give each target one item of a tuple value (`--listen` -> http.host, http.port).
    spread: bool = False
    #: The default when neither the flag nor its variable is given.
    default: Any = FROM_SETTINGS
    #: A default computed from the environment when the command runs (`--host`: `$POD_NAME`).
    default_from: Callable[[Mapping[str, str]], Any] | None = None
    #: How the default is shown in `--help`; None shows nothing.
    show: Callable[[Any], str] | None = str
    metavar: str | None = None
    #: A short form of the flag (`-o` for `--output`).
    short: str | None = None
    #: The command fails without it (only for a command that reads no environment: `run`
    #: takes every option from its variable too).
    required: bool = False

    @property
    def dest(self) -> str:
        """The attribute name (`--poll-interval` -> `poll_interval`)."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def variable(self) -> str:
        """`SIDECAR_POLL_INTERVAL` for `--poll-interval`."""
        return ENV_PREFIX + self.dest.upper()

    def default_value(self, environ: Mapping[str, str]) -> Any:
        """The value when neither the flag nor the variable is given."""
        if self.default_from is not None:
            return self.default_from(environ)
        if self.default is not FROM_SETTINGS:
            return self.default
        if self.kind == "switch":
            return False
        defaults = [_settings_default(target) for target in self.to]
        return tuple(defaults) if self.spread else defaults[0]

    def from_text(self, text: str) -> Any:
        """The value of an environment variable.

        Raises:
            ValueError: not a value of this option (the message says why).
        """
        if self.kind == "switch":
            flag = _BOOLEANS.get(text.strip().lower())
            if flag is None:
                raise ValueError(f"{self.variable}={text!r} is not a boolean (true or false)")
            return flag
        items = [part for part in text.split(",") if part] if self.kind == "list" else [text]
        values = []
        for item in items:
            if self.choices is not None and item not in self.choices:
                choices = ", ".join(self.choices)
                raise ValueError(f"{self.variable}={text!r} is not one of {choices}")
            try:
                values.append(self.parse(item))
            except (ValueError, argparse.ArgumentTypeError) as error:
                raise ValueError(f"{self.variable}={text!r} for {self.flag}: {error}") from None
        return tuple(values) if self.kind == "list" else values[0]


def _settings_default(target: str) -> Any:
    """The default of a `DaemonSettings` field, `section.field` or `field`."""
    value: Any = DaemonSettings()
    for name in target.split("."):
        value = getattr(value, name)
    return value


def add_options(
    parser: argparse.ArgumentParser | Any, options: Iterable[Option], *, environ: bool
) -> None:
    """Add `options` to `parser` (or an argument group).

    With `environ`, argparse defaults stay None: None marks "not given", so that `resolve` can
    tell a flag from its variable and its default. Without, the defaults are argparse's (but
    those computed from the environment when the command runs, which `resolve` gives).
    """
    for option in options:
        help_text = option.help
        default = None if option.default_from else option.default_value({})
        if option.show is not None and default not in (None, (), False):
            help_text += f" (default: {option.show(default)})"
        if environ:
            help_text += f" [${option.variable}]"
            default = None
        elif option.kind == "list" and default is not None:
            default = list(default)  # argparse appends to a copy of it
        help_text = help_text.replace("%", "%%")
        flags = (option.flag,) if option.short is None else (option.short, option.flag)
        if option.kind == "switch":
            parser.add_argument(*flags, action="store_true", default=default, help=help_text)
            continue
        parser.add_argument(
            *flags,
            action="append" if option.kind == "list" else "store",
            type=option.parse,
            choices=option.choices,
            default=default,
            required=option.required,
            metavar=option.metavar,
            help=help_text,
        )


def resolve(
    options: Iterable[Option],
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    variables: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Each option's value (flag, else variable, else default) and the variables that are wrong.

    `variables=False` for a command whose options are not read from the environment (`replay`);
    a default may still depend on it (`--host`: `$POD_NAME`).
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for option in options:
        values[option.dest] = option.default_value(environ)
        if variables and option.variable in environ:
            # Checked even when a flag wins: a wrong variable is a mistake in the pod spec.
            try:
                values[option.dest] = option.from_text(environ[option.variable])
            except ValueError as error:
                problems.append(str(error))
        given = getattr(args, option.dest)
        if given is not None:
            values[option.dest] = tuple(given) if option.kind == "list" else given
    return values, problems


def settings_from(options: Iterable[Option], values: Mapping[str, Any]) -> DaemonSettings:
    """The `DaemonSettings` the options' values call for; fields no option sets keep defaults."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for option in options:
        value = values[option.dest]
        pairs = (
            zip(option.to, value, strict=True) if option.spread else ((t, value) for t in option.to)
        )
        for target, item in pairs:
            section, _, name = target.rpartition(".")
            (sections.setdefault(section, {}) if section else top)[name] = item
    base = DaemonSettings()
    for section, fields in sections.items():
        top[section] = dataclasses.replace(getattr(base, section), **fields)
    return dataclasses.replace(base, **top)


# -- parsers: one string to one value, for flags and variables alike -----------------------------


def positive_int(text: str) -> int:
    """A whole number above zero (queue sizes, bursts, limits)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above zero")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero (intervals, windows)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above zero")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of seconds, zero allowed (waits, deadlines)."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of at least zero")
    return value


def host_port(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) as (host, port); see `sidecar.core.addresses`."""
    try:
        return parse_host_port(text)
    except AddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def host_port_text(text: str) -> str:
    """A well-formed `host:port`, kept as written (the socket source parses it again)."""
    host_port(text)
    return text


def show_host_port(value: Sequence[Any]) -> str:
    """How a (host, port) default is shown in `--help`."""
    host, port = value
    return format_host_port(host, port)


def parse_moment(text: str, now: float | None = None) -> float:
    """`--since`/`--until`: RFC 3339 (a date alone is its midnight UTC), or a duration before
    `now` such as `1h`, `-30m`, `90s`, `2d` (the sign is optional: it always means before)."""
    duration = _DURATION.fullmatch(text.strip())
    if duration is not None:
        seconds = int(duration[1]) * _UNITS[duration[2]]
        return (time.time() if now is None else now) - seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither RFC 3339 (2026-11-20T09:00:00Z) nor a duration (1h, 30m)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_DURATION = re.compile(r"-?(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def group_version(text: str) -> tuple[str, str]:
    group, slash, version = text.rpartition("/")
    if not slash or not group or not version:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not GROUP/VERSION (autoscaling.example.com/v1)"
        )
    return group, version


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
