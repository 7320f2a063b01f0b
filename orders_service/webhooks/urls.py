"""Which URLs an endpoint may have: checked when an admin gives one, and again at every connection.

The service makes these requests from inside the shop's network, so a URL naming this machine, the
private network or the cloud's metadata address (169.254.169.254) would let whoever registers an
endpoint reach them (server-side request forgery). Such addresses are refused unless
WEBHOOK_ALLOW_PRIVATE_URLS says otherwise — also when a host name resolves to one. A name may resolve
differently later (DNS rebinding), so the sender resolves it again, checks every address, and connects
to the address it checked (`sender.py`).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UrlRefused(ValueError):
    """The URL may not be used; the message says why, in words for the admin."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # a name or an address literal (without brackets)
    port: int
    path: str  # path and query, as sent in the request line


def parse(url: str, https_only: bool) -> Target:
    """The parts of an endpoint URL, or UrlRefused: http(s) only (https only when `https_only`), a host, no
    user name or password (the signature is what authenticates the service)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("must be an http or https URL")
    if https_only and scheme != "https":
        raise UrlRefused("must be an https URL in production")
    if not parts.hostname:
        raise UrlRefused("names no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("may not carry a user name or password")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UrlRefused("may not contain spaces or control characters")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def refusal(address: str) -> str | None:
    """Why an IP address may not be reached (loopback, private, link-local, …), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index names an interface, not a host
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    for kind, flag in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return f"{ip} is a {kind} address"
    if not ip.is_global:  # shared address space (100.64.0.0/10), documentation ranges, …
        return f"{ip} is not a public address"
    return None


def resolve(target: Target, allow_private: bool) -> list[str]:
    """The host's addresses, every one of them checked; UrlRefused if it does not resolve or (unless
    `allow_private`) any address is not public — a name with one private address is refused whole, so
    that which address a connection picks never matters."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise UrlRefused(f"names a host that does not resolve ({target.host})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason:
                raise UrlRefused(f"names a host that is not public: {target.host} resolves to {reason}"
                                 if address != target.host else f"names an address that is not public: {reason}")
    return addresses


def check(url: str, https_only: bool, allow_private: bool) -> None:
    """UrlRefused unless `url` may be an endpoint's (an admin's create or update)."""
    resolve(parse(url, https_only), allow_private)
