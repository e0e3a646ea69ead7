"""Every token the bot obtains comes from TO_CHANNEL_FROM_BOT_LOGIN_URL, and only from there.

The bot gets tokens in two places: its replies (bots/tokens.py) and botbuilder's own
connector client, which `TeamsInfo.get_member` uses to look up an installing guest's name.
The second one's MSAL asked login.microsoftonline.com to "discover" the configured
authority, whatever it was. Here a real Teams install, signed with a real token, is
followed to the end while every host name the process looks up is recorded: only
loopback may appear, the local identity server issues every token, and the name lookup
carries one of them.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests import teams
from tests.auth_server import ISSUER, LocalIdentity
from tests.connector import Connector, start_connector
from tests.harness import BotServer, settings_for, texts

APP_ID = "0d7c54d6-58a1-4c8e-9d5b-6a1f3e2c9b70"
PASSWORD = "test-only-secret"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class MemberRecordingConnector(Connector):
    """The local connector, keeping the Authorization header of every member lookup."""

    lookups: list[str | None] = field(default_factory=list)

    async def member(self, request: web.Request) -> web.Response:
        self.lookups.append(request.headers.get("Authorization"))
        return await super().member(request)


@pytest.fixture
def hosts_asked(monkeypatch) -> list[str]:
    """Every name the process looks up; anything off this machine fails."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        asked.append(name)
        if name not in LOOPBACK:
            raise OSError(f"test tried to reach {name!r} off this machine")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def identity(tmp_path):
    server = LocalIdentity(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def connector():
    connector, runner = await start_connector(MemberRecordingConnector())
    yield connector
    await runner.cleanup()


@pytest.mark.parametrize("app_type", ["MultiTenant", "SingleTenant"])
async def test_every_token_comes_from_the_configured_login_url(
        tmp_path, identity, connector, hosts_asked, monkeypatch, caplog, app_type):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    server = await BotServer(settings_for(
        tmp_path, app_id=APP_ID, app_password=PASSWORD, app_type=app_type,
        aad_tenant_id="11111111-2222-3333-4444-555555555555",
        openid_metadata_url=identity.metadata_url, token_issuer=ISSUER,
        login_url=identity.login_url,
    )).start()
    try:
        caplog.set_level(logging.INFO)
        user = teams.TeamsUser.make("Named By Connector")
        activity: dict[str, Any] = teams.install(user, connector.url)
        activity["from"].pop("name")  # Teams sends none: the bot asks the connector
        activity["membersAdded"].append({"id": user.id})  # botbuilder asks for this one too
        connector.members[user.id] = {"id": user.id, "name": "Named By Connector"}
        token = identity.sign(identity.claims(APP_ID, connector.url))
        status, _ = await server.post(activity, headers={"Authorization": f"Bearer {token}"})
        assert status == 201
        assert "Named By Connector" in texts(connector.to(user.conversation_id))
        off_machine = sorted({host for host in hosts_asked if host not in LOOPBACK})
        assert off_machine == [], f"the bot looked up {off_machine}"
        # both of botbuilder's lookups and every reply carried a token the local login issued
        issued = {f"Bearer {t}" for t in identity.issued}
        assert len(connector.lookups) == 2 and set(connector.lookups) <= issued, (
            connector.lookups, identity.issued)
        assert identity.token_requests and all(
            r.path == "/botframework.test/oauth2/v2.0/token" for r in identity.token_requests)
        assert not [r for r in caplog.records if "could not look up" in r.getMessage()]
    finally:
        await server.stop()
