"""Where a webhook may be sent: http or https, to a host whose every address is public.

Checked when an endpoint is registered and again before every attempt (DNS may have changed
since): the attempt then connects to the very address that was checked (``Target.address``), so
a name that resolves to a public address for the check and a private one for the connection
(DNS rebinding) cannot reach inside. ``allow_private`` (INVENTORY_WEBHOOKS_ALLOW_PRIVATE) lifts
the address rule for deployments whose receivers are on the private network, and for tests.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from app.domain.webhooks import refused_address

MAX_URL_LENGTH = 2000
RESOLVE_SECONDS = 5.0
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# The URLs accepted, as the API documents them: http or https, a host name or IPv4 address (an
# IPv6 address needs a name), an optional port, then printable ASCII without spaces.
# (?!\n): Python's "$" also matches before a trailing newline (see SECRET_PATTERN in service.py).
URL_PATTERN = rf"^https?://[A-Za-z0-9][A-Za-z0-9.-]{{0,252}}(:{_PORT})?([/?#][\x21-\x7e]*)?(?!\n)$"
_URL = re.compile(URL_PATTERN)


class WebhookUrlError(ValueError):
    """The URL may not be used; the message says why."""


class AddressRefused(WebhookUrlError):
    """The host resolves to an address that is not public, and private ones are not allowed."""


class Unresolvable(WebhookUrlError):
    """The host has no address right now (DNS may answer later)."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    host: str
    address: str

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name (the Host header and TLS
        server name keep the name)."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        netloc = address if parts.port is None else f"{address}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if parts.port is None else f"{host}:{parts.port}"


def check_form(url: str) -> SplitResult:
    """The URL's shape alone: scheme, host, no credentials, a sane length."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not url.lower().startswith(("http://", "https://")):
        raise WebhookUrlError("the URL must start with http:// or https://")
    if not _URL.fullmatch(url):
        raise WebhookUrlError(
            "not a URL this accepts: http(s)://host[:port][/path], a host name or IPv4 address, no spaces"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise WebhookUrlError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("the URL may not carry a user name or password; sign with the secret instead")
    if port == 0:
        raise WebhookUrlError("the URL's port must be 1-65535")
    return parts


async def resolve(url: str, *, allow_private: bool) -> Target:
    """The URL checked and resolved; WebhookUrlError when it is refused."""
    parts = check_form(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise Unresolvable(f"cannot resolve {host}: no answer within {RESOLVE_SECONDS} s") from None
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Unresolvable(f"{host} has no address")
    if not allow_private:
        # Every address, not only the first: a name with a public and a private address would
        # otherwise reach inside whenever the private one came first.
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise AddressRefused(
                    f"{host} resolves to {why}; only public addresses may receive webhooks "
                    "(an admin may allow private ones with INVENTORY_WEBHOOKS_ALLOW_PRIVATE=1)"
                )
    return Target(url=url, host=host, address=addresses[0])
