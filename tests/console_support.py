"""What the console's tests share: a help desk with supervisors and an admin (IT and HR of
tests/e2e_configs/agents.yaml), a bot that signs them in against the local identity
(tests/console_identity.py), and a client that holds one person's cookies."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from tests.agent_desk import AGENTS
from tests.console_identity import CLIENT_ID, CLIENT_SECRET, ConsoleIdentity, Person
from tests.harness import BotServer

HR_SUPERVISOR = Person("dddddddd-0000-0000-0000-000000000001", "Hana Supervisor")
IT_SUPERVISOR = Person("dddddddd-0000-0000-0000-000000000002", "Ivan Supervisor")
ADMIN = Person("dddddddd-0000-0000-0000-000000000009", "Ada Admin")
NOBODY = Person("dddddddd-0000-0000-0000-000000000099", "Nora Nobody")
SECRET = "console-cookie-key-" + "x" * 40


def console_config(tmp_path: Path) -> Path:
    """tests/e2e_configs/agents.yaml with a supervisor for each department and an admin."""
    config = yaml.safe_load(AGENTS.read_text())
    for tenant, person in (("it", IT_SUPERVISOR), ("hr", HR_SUPERVISOR)):
        spec = next(t for t in config["tenants"] if t["id"] == tenant)
        spec["supervisors"] = [{"aad_object_id": person.oid, "name": person.name}]
    # an agent with skills, as the console shows them
    config["tenants"][0]["agents"][0]["skills"] = {"vpn": 3, "language:fr": 1}
    config["admins"] = [{"aad_object_id": ADMIN.oid, "name": ADMIN.name}]
    path = tmp_path / "console.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def sign_in_settings(identity: ConsoleIdentity, console_url: str = "http://127.0.0.1") -> dict:
    return {"console_client_id": CLIENT_ID, "console_client_secret": CLIENT_SECRET,
            "console_authority": identity.authority, "console_url": console_url,
            "console_secret": SECRET, "console_fold_interval": 0, "console_fold_lag": 0}


@dataclass
class Browser:
    """One person's requests to the console, with their cookies (as a browser keeps them)."""

    server: BotServer
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)
    csrf: str = ""

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        for header in response.headers.getall("Set-Cookie", []):
            self.set_cookies.append(header)
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        url = path if path.startswith("http") else self.server.url + path
        assert self.server.http is not None
        async with self.server.http.get(url, headers=self._headers(kwargs.pop("headers", None)),
                                        allow_redirects=False, **kwargs) as response:
            self._keep(response)
            return response.status, await _read(response), response

    async def post(self, path: str, body: Any = None, *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        extra = dict(headers or {})
        if csrf and self.csrf:
            extra.setdefault("X-CSRF-Token", self.csrf)
        assert self.server.http is not None
        async with self.server.http.post(self.server.url + path, json=body if body is not None
                                         else {}, headers=self._headers(extra),
                                         allow_redirects=False) as response:
            self._keep(response)
            return response.status, await _read(response)

    async def sign_in(self, identity: ConsoleIdentity, person: Person) -> None:
        """The whole flow: the console sends the browser to the identity's authorize page,
        which sends it back to the callback with a code."""
        identity.signs_in = person
        status, _, response = await self.get("/console/signin")
        assert status == 302, status
        authorize = response.headers["Location"]
        assert authorize.startswith(identity.authority), authorize
        async with aiohttp.ClientSession() as http, http.get(
                authorize, allow_redirects=False, ssl=False) as answer:
            assert answer.status == 302, await answer.text()
            callback = answer.headers["Location"]
        # the console's public address (SWITCHBOARD_CONSOLE_URL) has no port: the test's
        # bot listens on a free one
        parts = urlsplit(callback)
        status, body, response = await self.get(f"{parts.path}?{parts.query}")
        assert status == 302 and response.headers["Location"] == "/console/", (status, body)
        status, me, _ = await self.get("/console/api/me")
        if status == 200:
            self.csrf = me["csrf"]


async def _read(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    if "json" in (response.headers.get("Content-Type") or ""):
        import json

        return json.loads(text)
    return text
