"""Which hosts a rule's webhook, Slack and Teams URLs may reach (``BOTMON_WEBHOOK_ALLOW``).

By default a rule may notify public addresses only: loopback, private
(RFC 1918 / RFC 4193), link-local (where cloud metadata services live),
shared (CGNAT), multicast, reserved and unspecified addresses are refused, so
an operator-role user cannot make the suite call internal services.
``BOTMON_WEBHOOK_ALLOW`` lists exceptions, comma separated:

- ``10.1.2.0/24`` or ``127.0.0.1`` — allow a network or an address;
- ``hooks.internal`` — allow a host name (exact, case-insensitive);
- ``*.corp.example`` — allow every name under a domain;
- ``!203.0.113.0/24``, ``!*.example.org`` — deny; a denial wins over an allowance;
- ``*`` — allow every destination not denied (a lab, say).

The policy is checked when a rule is configured (literal addresses and names)
and again when a notification is sent, on every address a name resolves to, so
a name that later resolves to a refused address is still refused. The host is
judged as the HTTP client will connect to it (``botmon.runtime.urls.client_host``):
a host that is not plain ASCII is refused, since yarl turns ``１２７.0.0.1`` into
the literal ``127.0.0.1``, which never reaches the resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver

from botmon.runtime.urls import client_host

__all__ = ["DestinationPolicy", "DestinationRefused", "PolicyResolver"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(OSError):
    """Every address of a destination is refused by the policy; retrying will not help."""


def _internal(address: _Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class DestinationPolicy:
    """Allowed and denied networks and host patterns; internal addresses denied by default."""

    allow_networks: tuple[_Network, ...] = ()
    deny_networks: tuple[_Network, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    allow_all: bool = False

    @classmethod
    def parse(cls, raw: str) -> DestinationPolicy:
        allow_nets, deny_nets, allow_hosts, deny_hosts, allow_all = [], [], [], [], False
        for entry in filter(None, (e.strip().lower() for e in raw.split(","))):
            deny = entry.startswith("!")
            pattern = entry.removeprefix("!").strip()
            if pattern == "*" and not deny:
                allow_all = True
                continue
            try:
                (deny_nets if deny else allow_nets).append(ipaddress.ip_network(pattern,
                                                                                 strict=False))
                continue
            except ValueError:
                pass
            name = pattern.removeprefix("*.")
            if not name or not all(part.replace("-", "").isalnum() for part in name.split(".")):
                raise ValueError(f"expected CIDRs, host names or *.domain patterns (a leading ! "
                                 f"denies), got {entry!r}")
            (deny_hosts if deny else allow_hosts).append(pattern)
        return cls(tuple(allow_nets), tuple(deny_nets), tuple(allow_hosts), tuple(deny_hosts),
                   allow_all)

    def __str__(self) -> str:
        parts = [str(n) for n in self.allow_networks] + list(self.allow_hosts)
        parts += [f"!{n}" for n in self.deny_networks] + [f"!{h}" for h in self.deny_hosts]
        return ",".join((["*"] if self.allow_all else []) + parts) or "(public addresses only)"

    def host_allowed(self, host: str) -> bool | None:
        """The verdict of the name patterns on ``host``; None when no pattern names it."""
        host = host.lower().rstrip(".")
        if any(_matches(p, host) for p in self.deny_hosts):
            return False
        if any(_matches(p, host) for p in self.allow_hosts):
            return True
        return None

    def address_allowed(self, address: _Address) -> bool:
        if any(address in net for net in self.deny_networks):
            return False
        if self.allow_all or any(address in net for net in self.allow_networks):
            return True
        return not _internal(address)

    def problem(self, url: str) -> str | None:
        """Why ``url`` may not be notified, or None; names are judged by pattern only."""
        try:
            host = client_host(url)
        except ValueError as exc:
            return str(exc)
        address = _literal_address(host)
        if address is None:
            verdict = self.host_allowed(host)
            if verdict is False or (verdict is None and not self.allow_all
                                    and (host == "localhost" or host.endswith(".localhost"))):
                return f"{host} is not an allowed destination; see BOTMON_WEBHOOK_ALLOW"
            return None
        if self.address_allowed(address):
            return None
        if any(address in net for net in self.deny_networks):
            return f"{address} is denied by BOTMON_WEBHOOK_ALLOW"
        return f"{address} is an internal address; allow it in BOTMON_WEBHOOK_ALLOW to notify it"


def _literal_address(host: str) -> _Address | None:
    """The address ``host`` spells, also in the legacy forms a URL library or resolver
    accepts (``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``); else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that drops resolved addresses the policy refuses."""

    def __init__(self, policy: DestinationPolicy):
        self.policy = policy
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET):
        results = await self.inner.resolve(host, port, family)
        if self.policy.host_allowed(host) is True:
            return results
        allowed = [r for r in results
                   if self.policy.address_allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise DestinationRefused(
                f"{host} resolves only to addresses BOTMON_WEBHOOK_ALLOW does not allow")
        return allowed

    async def close(self) -> None:
        await self.inner.close()
