"""Inputs checked where they are typed: URLs, endpoints, device names, durations, keys, paths.

Pure validators. Each returns the value normalised or raises ``FnError`` with a stable
code and a hint saying what a good value looks like, before any side effect — so a
token is never made for an endpoint no device could reach, and a typo is caught at the
keyboard, not ten minutes later on the device.

    code              raised by
    bad_url           check_url
    bad_endpoint      check_hub_endpoint (the /enroll base URL a token names)
    bad_host_port     check_host_port (WireGuard endpoint host:port)
    bad_device_name   check_device_name
    bad_duration      parse_duration

Keys are checked by ``meshagents.wg.keys.check_key`` (``invalid_key``).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from meshagents.errors import FnError
from meshagents.trust.models import DEVICE_NAME_PATTERN

DEVICE_NAME = re.compile(DEVICE_NAME_PATTERN)  # the manifest's, one owner
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def check_url(value: str, *, what: str = "URL", code: str = "bad_url",
              schemes: tuple[str, ...] = ("http", "https")) -> str:
    """A URL with one of ``schemes``, a host and (if given) a port in 1..65535; no trailing slash."""
    hint = f"{what} must look like https://hub.example.org:8443"
    if "://" not in value:
        raise FnError(code, f"{what} {value!r}: no scheme; {hint}", value=value)
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of range
        raise FnError(code, f"{what} {value!r}: {exc}; {hint}", value=value) from exc
    if parts.scheme not in schemes:
        shown = parts.scheme or "none"
        raise FnError(code, f"{what} {value!r}: scheme {shown}, expected {' or '.join(schemes)}; {hint}",
                      value=value)
    host = parts.hostname or ""
    if not host or not _host_ok(host):
        raise FnError(code, f"{what} {value!r}: no valid host; {hint}", value=value)
    if port == 0:
        raise FnError(code, f"{what} {value!r}: port 0; {hint}", value=value)
    if parts.query or parts.fragment:
        raise FnError(code, f"{what} {value!r}: no query or fragment allowed; {hint}", value=value)
    return value.strip().rstrip("/")


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: reachable from this machine only."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def check_hub_endpoint(value: str, *, allow_loopback: bool = False) -> str:
    """The hub's public /enroll base URL written into a token: a device elsewhere must reach it.

    Refused (``bad_endpoint``): no scheme, no host, a listen-anywhere address (0.0.0.0,
    ::), and, unless ``allow_loopback`` (a device on this very machine), loopback hosts
    (``localhost``, 127.0.0.0/8, ::1).
    """
    url = check_url(value, what="hub endpoint", code="bad_endpoint")
    host = url_host(url)
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        raise FnError("bad_endpoint",
                      f"hub endpoint {value!r}: {host} is a listen-anywhere address, not one a device can "
                      "connect to (set the hub's public_url or public_host)", value=value)
    if is_loopback_host(host) and not allow_loopback:
        raise FnError("bad_endpoint",
                      f"hub endpoint {value!r}: {host} is this machine only; a device could never reach it "
                      "(give the hub's public name or address)", value=value)
    return url


def check_host_port(value: str, *, what: str = "endpoint") -> str:
    """``host:port`` (``[v6]:port`` for IPv6), as a WireGuard ``Endpoint =`` takes it."""
    hint = f"{what} must look like vps.example.org:51820 or [2001:db8::1]:51820"
    m = re.match(r"^\[(?P<v6>[^\]]+)\]:(?P<port>\d+)$|^(?P<host>[^:\[\]]+):(?P<port2>\d+)$", value.strip())
    if not m:
        raise FnError("bad_host_port", f"{what} {value!r}: {hint}", value=value)
    host = m["v6"] or m["host"] or ""
    port = int(m["port"] or m["port2"])
    if not _host_ok(host) or not 0 < port < 65536:
        raise FnError("bad_host_port", f"{what} {value!r}: {hint}", value=value)
    return value.strip()


def check_device_name(value: str) -> str:
    """A device name: lowercase letters, digits, ``_ . -``, starting with a letter or digit, ≤ 63."""
    if not DEVICE_NAME.match(value):
        raise FnError("bad_device_name",
                      f"device name {value!r}: use lowercase letters, digits, '-', '_' or '.', "
                      "starting with a letter or digit (e.g. home-wsl)", value=value)
    return value


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``1.5``, ``250ms``, ``10m``, ``2h``, ``7d``; > 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            hint = "use a number of seconds or 250ms, 10m, 2h, 7d"
            raise FnError("bad_duration", f"duration {value!r}: {hint}", value=str(value))
        seconds = float(m[1]) * _UNIT_S[m[2] or "s"]
    if seconds <= 0:
        raise FnError("bad_duration", f"duration {value!r} must be more than zero", value=str(value))
    return seconds

