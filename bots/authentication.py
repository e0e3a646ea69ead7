"""How the bot authenticates with the Bot Framework, both ways, from the settings.

Incoming: botbuilder checks each request's token against the OpenID metadata and issuer
(`TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`, `TO_BOT_FROM_CHANNEL_TOKEN_ISSUER`; Microsoft's
public cloud unless set). Outgoing: every token the bot obtains comes from
`TO_CHANNEL_FROM_BOT_LOGIN_URL` when it is set, for its replies (bots/tokens.py) and for
botbuilder's own clients alike (`TeamsInfo` asks the connector for an installing guest's
name). botbuilder 4.17.1 builds those clients' MSAL application itself, with MSAL's
instance discovery on, so for a login URL outside Microsoft's cloud MSAL first asked
login.microsoftonline.com about it: here they get one MSAL application built like the
replies' (bots/tokens.py), which contacts nothing but the login URL.

A user-assigned managed identity gets its tokens from Azure's instance metadata service,
whatever the login URL: botbuilder's own factory, as shipped.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Protocol

import msal
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import (
    AuthenticationConstants,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)

from bots.tokens import confidential_client


class AuthSettings(Protocol):
    """What authentication reads of app.Settings."""

    app_id: str
    app_password: str
    app_type: str
    aad_tenant_id: str
    login_url: str | None
    openid_metadata_url: str | None
    token_issuer: str | None


PUBLIC_CLOUD = {
    "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL":
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
    "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
    "TO_CHANNEL_FROM_BOT_LOGIN_URL": AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
    "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
    "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL":
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    "OAUTH_URL": AuthenticationConstants.OAUTH_URL,
    "CALLER_ID": CallerIdConstants.public_azure_channel,
}


class LoginUrlCredentialFactory(PasswordServiceClientCredentialFactory):
    """Credentials for botbuilder's clients that log in at `login` only, through one MSAL
    application for all of them (so its token cache is shared too)."""

    def __init__(self, app_id: str, password: str, login: str) -> None:
        super().__init__(app_id, password)
        self.login = login
        self._msal: msal.ConfidentialClientApplication | None = None

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> MicrosoftAppCredentials:
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError(f"app id {app_id!r} is not this bot's")
        if self._msal is None:
            self._msal = confidential_client(self.app_id, self.password, self.login)
        credentials = MicrosoftAppCredentials(app_id, self.password, oauth_scope=oauth_scope)
        credentials.oauth_endpoint = self.login
        credentials.app = self._msal  # botbuilder builds its own only when this is None
        return credentials


def bot_auth(settings: AuthSettings) -> ConfigurationBotFrameworkAuthentication:
    config = SimpleNamespace(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password,
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.aad_tenant_id,
    )
    overrides = {
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": settings.openid_metadata_url,
        "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": settings.token_issuer,
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": settings.login_url,
    }
    if any(overrides.values()):
        # with any of these set botbuilder uses only what it is given (an unset issuer would
        # refuse every token): the others keep the public cloud's values
        for name, default in PUBLIC_CLOUD.items():
            setattr(config, name, overrides.get(name) or default)
    factory = None
    if settings.login_url and settings.app_id and settings.app_type != "UserAssignedMSI":
        factory = LoginUrlCredentialFactory(settings.app_id, settings.app_password,
                                            settings.login_url)
    return ConfigurationBotFrameworkAuthentication(config, credentials_factory=factory)
