"""Which callback URLs the service will call.

Only http(s) (the spec's type enforces it). Loopback, private, link-local and reserved addresses
are allowed unless LEAKGATE_WEBHOOK_ALLOW_PRIVATE=false: a pipeline on the same host or network
is the common receiver, but a shared deployment should forbid them so that a tenant cannot make
the service probe its internal network. The check runs at submission and again before each
delivery (a name may resolve differently later).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class CallbackRefused(ValueError):
    """The callback URL may not be called."""


def check_callback_url(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback_url {url!r}: only http(s) URLs with a host are called")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CallbackRefused(f"callback_url host {parts.hostname!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise CallbackRefused(
                f"callback_url host {parts.hostname!r} resolves to the non-public address "
                f"{address}; this service forbids those (LEAKGATE_WEBHOOK_ALLOW_PRIVATE=false)"
            )
