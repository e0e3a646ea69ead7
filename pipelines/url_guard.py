"""Where `http_request` stages may connect: the allowlist, the scheme, and the addresses.

A config must not be able to turn the bot against the machine it runs on or the cloud around
it (server-side request forgery). So, for every call:

- the URL's host must be on the config's `http_allowlist` (exact names, compared lowercase);
- the scheme is `https`, except for a loopback host (`localhost`, 127.0.0.0/8, ::1);
- no user name or password in the URL (secrets come from the environment);
- link-local and cloud metadata addresses are refused whatever the allowlist says: 169.254.0.0/16
  (169.254.169.254 is the metadata service of Azure, AWS and Google Cloud), fe80::/10,
  fd00:ec2::254 (AWS's IPv6 metadata address), 168.63.129.16 (Azure's host endpoint), and
  0.0.0.0/8, ::, multicast and broadcast; an IPv4 address written inside IPv6 (::ffff:a.b.c.d,
  NAT64, 6to4, Teredo) is judged as that IPv4 address.

The addresses are checked when the bot connects, not only in the URL's text: `GuardedResolver`
sits in aiohttp's connector and refuses a name that resolves to a refused address, so DNS cannot
be used to get around the rule. A name that is not loopback must not resolve to loopback either
(DNS rebinding onto the bot's own machine); `localhost` must resolve only to loopback.
aiohttp does not resolve a URL whose host is an address, so `check_url` judges those itself.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# never connected to, whatever the allowlist says: (network, what it is)
REFUSED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("169.254.169.254/32"), "the cloud metadata service"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "the cloud metadata service (IPv6)"),
    (ipaddress.ip_network("168.63.129.16/32"), "Azure's host endpoint (WireServer)"),
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address"),
    (ipaddress.ip_network("fe80::/10"), "a link-local address"),
    (ipaddress.ip_network("0.0.0.0/8"), "an unspecified address"),
    (ipaddress.ip_network("::/128"), "an unspecified address"),
    (ipaddress.ip_network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.ip_network("ff00::/8"), "a multicast address"),
    (ipaddress.ip_network("255.255.255.255/32"), "the broadcast address"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class Refused(Exception):
    """A URL or an address the bot will not connect to; the message says why."""


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refused_address(address: IPAddress) -> str | None:
    """Why the bot never connects to `address` (None: it may, if its host is allowed)."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
    for candidate in candidates:
        for network, what in REFUSED_NETWORKS:
            if candidate.version == network.version and candidate in network:
                return f"{candidate} is {what}"
    return None


def is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def normal_host(host: str) -> str:
    """A host as the allowlist compares it: lowercase, no trailing dot, IDNA for other
    scripts ("bücher.example" -> "xn--bcher-kva.example")."""
    name = host.strip().rstrip(".").casefold()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def allowlist_problem(entry: str) -> str | None:
    """What is wrong with one `http_allowlist` entry (None: fine)."""
    address = _address(entry)
    if address is not None:
        why = refused_address(address)
        return f"{why}: the bot never calls it, so it cannot be allowed" if why else None
    name = normal_host(entry)
    if not _HOST_NAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
        return (f"{entry!r} is not a host name or an IP address: write the host alone, like "
                "acme.service-now.com (no scheme, port or path)")
    return None


def host_is_loopback(host: str) -> bool:
    """The URL's host names this machine: `localhost`, 127.0.0.0/8 or ::1."""
    if normal_host(host) in LOOPBACK_NAMES:
        return True
    address = _address(host)
    return address is not None and is_loopback(address)


def check_url(url: str | URL, allowlist: Iterable[str]) -> URL:
    """The URL parsed, if the bot may call it; `Refused` says why not.

    Judges the text: scheme, user info, host on the allowlist, and an address written as the
    host. Names are judged again when they resolve (`GuardedResolver`)."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as exc:
        raise Refused(f"not a URL: {exc}") from None
    if any(ch.isspace() or ord(ch) < 32 for ch in str(url)):
        raise Refused("the URL holds spaces or control characters")
    scheme = (parsed.scheme or "").lower()
    host = parsed.raw_host or ""
    if scheme not in ("https", "http") or not host:
        raise Refused("use an absolute https:// URL")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise Refused("a user name or password in the URL: put credentials in an environment "
                      "variable named in `header_env`")
    if "%" in host:
        raise Refused("an IPv6 zone in the host is not allowed")
    address = _address(host)
    if address is not None:
        why = refused_address(address)
        if why:
            raise Refused(f"{why}: the bot never calls it")
    if scheme == "http" and not host_is_loopback(host):
        raise Refused(f"http:// to {host}: use https:// (plain http only for loopback)")
    allowed = {normal_host(h) for h in allowlist}
    if normal_host(host) not in allowed:
        raise Refused(f"host {host} is not on `http_allowlist`: add it there if the bot "
                      "should call it")
    return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to addresses the bot never calls."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner
        self._own = inner is None

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        found = await self._inner.resolve(host, port, family)
        loopback_name = host_is_loopback(host)
        for result in found:
            address = _address(result["host"])
            if address is None:
                raise Refused(f"{host} resolved to {result['host']!r}, not an address")
            why = refused_address(address)
            if why:
                raise Refused(f"{host} resolves to {why}: refused")
            if is_loopback(address) != loopback_name:
                where = "outside this machine" if loopback_name else "this machine (loopback)"
                raise Refused(f"{host} resolves to {address}, {where}: refused")
        return found

    async def close(self) -> None:
        if self._inner is not None and self._own:
            await self._inner.close()
