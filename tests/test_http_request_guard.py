"""The outbound URL guard: every refusal, through the real aiohttp client the bot uses, against a
local endpoint on loopback (tests/ticket_desk.py).

Names are resolved by a stand-in for DNS (`Dns`, handed to the guarded resolver as the real one
would be), so a test can make a name resolve to the metadata address and see the connection
refused when aiohttp connects, not only when the URL is read.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from pipelines.http_calls import HttpClient, Outcome, OutgoingRequest
from pipelines.url_guard import Refused, allowlist_problem, check_url, refused_address
from tests.ticket_desk import TicketDesk

AUTH = {"Authorization": "Basic dGlja2V0czpzM2NyZXQtdmFsdWU="}


class Dns(AbstractResolver):
    """Answers names from a table, as a DNS server an attacker controls could."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        out: list[ResolveResult] = []
        for address in self.table[host]:
            version = ipaddress.ip_address(address).version
            out.append({"hostname": host, "host": address, "port": port,
                        "family": socket.AF_INET6 if version == 6 else socket.AF_INET,
                        "proto": 0, "flags": socket.AI_NUMERICHOST})
        return out

    async def close(self) -> None:
        return None


@pytest.fixture
async def desk():
    desk = await TicketDesk().start()
    yield desk
    await desk.stop()


def request(url: str, allowlist: list[str], **kwargs) -> OutgoingRequest:
    return OutgoingRequest("POST", url, {**AUTH, "Accept": "application/json"},
                           b'{"short_description": "x"}', kwargs.pop("timeout", 3.0),
                           tuple(allowlist), **kwargs)


async def call(url: str, allowlist: list[str], dns: Dns | None = None):
    client = HttpClient(resolver=dns)
    try:
        return await client.call(request(url, allowlist))
    finally:
        await client.close()


async def test_an_allowed_loopback_host_is_called(desk):
    result = await call(f"{desk.url}/api/now/table/incident", ["127.0.0.1"])
    assert result.outcome == Outcome.DONE and result.status == 201
    assert result.json["result"]["number"] == "INC0010001"


async def test_a_host_missing_from_the_allowlist_is_refused(desk):
    result = await call(f"{desk.url}/api/now/table/incident", ["tickets.example.com"])
    assert result.outcome == Outcome.REFUSED
    assert "127.0.0.1 is not on `http_allowlist`" in result.reason
    assert desk.requests == []


@pytest.mark.parametrize("url", [
    "http://tickets.example.com/api",           # plain http beyond loopback
    "ftp://tickets.example.com/api",
    "https://user:pass@tickets.example.com/api",  # credentials in the URL
    "https://tickets.example.com@evil.example.net/api",
    "https://evil.example.net/api",
])
async def test_what_the_url_says_is_refused_before_anything_is_resolved(url):
    dns = Dns({"tickets.example.com": ["127.0.0.1"], "evil.example.net": ["127.0.0.1"]})
    result = await call(url, ["tickets.example.com"], dns)
    assert result.outcome == Outcome.REFUSED, result
    assert dns.asked == []


@pytest.mark.parametrize("host", [
    "169.254.169.254",                  # the metadata service (Azure, AWS, Google Cloud)
    "169.254.10.20",                    # link-local
    "[fe80::1]",                        # IPv6 link-local
    "[fd00:ec2::254]",                  # AWS's IPv6 metadata address
    "[::ffff:169.254.169.254]",         # IPv4-mapped
    "[64:ff9b::a9fe:a9fe]",             # NAT64 of 169.254.169.254
    "168.63.129.16",                    # Azure's host endpoint
    "0.0.0.0",
])
async def test_link_local_and_metadata_addresses_are_refused_even_when_allowed(host):
    bare = host.strip("[]")
    result = await call(f"https://{host}/latest/meta-data/", [bare])
    assert result.outcome == Outcome.REFUSED and "never calls it" in result.reason


@pytest.mark.parametrize("answer", [
    ["169.254.169.254"], ["fe80::1"], ["fd00:ec2::254"], ["::ffff:169.254.169.254"],
    ["203.0.113.7", "169.254.169.254"],  # one bad address among good ones
])
async def test_a_name_resolving_to_a_refused_address_is_refused_when_connecting(answer):
    dns = Dns({"tickets.example.com": answer})
    result = await call("https://tickets.example.com/api/now/table/incident",
                        ["tickets.example.com"], dns)
    assert dns.asked == ["tickets.example.com"]  # the text was fine: refused on connecting
    assert result.outcome == Outcome.REFUSED
    assert "tickets.example.com resolves to" in result.reason


async def test_a_name_resolving_to_loopback_is_refused_and_localhost_only_to_loopback(desk):
    rebinding = Dns({"tickets.example.com": ["127.0.0.1"]})
    result = await call(f"https://tickets.example.com:{desk.port}/api/now/table/incident",
                        ["tickets.example.com"], rebinding)
    assert result.outcome == Outcome.REFUSED and "this machine (loopback)" in result.reason
    # `localhost` (plain http allowed) must stay on this machine
    away = Dns({"localhost": ["203.0.113.7"]})
    result = await call(f"http://localhost:{desk.port}/api/now/table/incident", ["localhost"],
                        away)
    assert result.outcome == Outcome.REFUSED and "outside this machine" in result.reason
    home = Dns({"localhost": ["127.0.0.1"]})
    result = await call(f"http://localhost:{desk.port}/api/now/table/incident", ["localhost"],
                        home)
    assert result.outcome == Outcome.DONE
    assert desk.requests and len(desk.requests) == 1


async def test_a_redirect_to_another_host_is_not_followed(desk):
    elsewhere = f"http://localhost:{desk.port}/api/now/table/incident"
    result = await call(f"{desk.url}/redirect/307?to={elsewhere}", ["127.0.0.1", "localhost"])
    assert result.outcome == Outcome.FAILED and result.status == 307
    assert "redirect to localhost is not followed" in result.reason
    assert [r.path for r in desk.requests] == ["/redirect/307"]


async def test_a_307_on_the_same_host_is_followed_a_302_is_not(desk):
    same = f"{desk.url}/api/now/table/incident"
    result = await call(f"{desk.url}/redirect/307?to={same}", ["127.0.0.1"])
    assert result.outcome == Outcome.DONE
    assert [(r.method, r.path) for r in desk.requests] == [
        ("POST", "/redirect/307"), ("POST", "/api/now/table/incident")]
    assert desk.requests[1].headers["Authorization"] == AUTH["Authorization"]
    result = await call(f"{desk.url}/redirect/302?to={same}", ["127.0.0.1"])
    assert result.outcome == Outcome.FAILED and result.status == 302
    assert len(desk.created()) == 1


def test_check_url_and_the_allowlist_entries():
    assert check_url("https://ACME.service-now.com./x", ["acme.service-now.com"]).host
    assert check_url("http://[::1]:8080/x", ["::1"])
    with pytest.raises(Refused, match="IPv6 zone"):
        check_url("https://[fe80::1%25eth0]/x", ["fe80::1"])
    assert refused_address(ipaddress.ip_address("2002:a9fe:a9fe::1"))  # 6to4
    assert refused_address(ipaddress.ip_address("10.1.2.3")) is None
    for entry in ("169.254.169.254", "fe80::1", "fd00:ec2::254", "168.63.129.16"):
        assert "cannot be allowed" in allowlist_problem(entry)
    for entry in ("https://acme.service-now.com", "acme.service-now.com/x", "127.1",
                  "2130706433", "a b", ""):
        assert "not a host name or an IP address" in allowlist_problem(entry), entry
    for entry in ("acme.service-now.com", "127.0.0.1", "::1", "localhost", "bücher.example"):
        assert allowlist_problem(entry) is None, entry
