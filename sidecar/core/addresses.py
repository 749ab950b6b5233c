"""`host:port` addresses, parsed one way for every socket the sidecar opens or is told about.

Strict on purpose: an IPv6 address must be in brackets (`[::1]:8090`), since without them
`::1:8090` is ambiguous; the port is 0-65535 in ASCII digits (0 asks the kernel for a free one);
an empty host means loopback, because every socket we open is loopback unless all interfaces are
asked for by name (`0.0.0.0`, `[::]`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

_ADDRESS: Final = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^\[\]:]*)):(?P<port>[0-9]{1,5})")
LOOPBACK: Final = "127.0.0.1"


class AddressError(ValueError):
    """An address is malformed, or not loopback where only loopback is allowed."""


def parse_host_port(address: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port` -> (host, port); an empty host is loopback.

    Raises:
        AddressError: not of that form, a bracketed host that is not IPv6, or a port above 65535.
    """
    match = _ADDRESS.fullmatch(address)
    if match is None or int(match["port"]) > 65535:
        raise AddressError(f"{address!r} is not host:port (IPv6 as [::1]:port)")
    if match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise AddressError(f"{address!r}: {match['v6']!r} is not an IPv6 address") from None
        return match["v6"], int(match["port"])
    return match["host"] or LOOPBACK, int(match["port"])


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_host_port(host: str, port: int) -> str:
    """The inverse of `parse_host_port`: IPv6 in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
