"""The bot's own token for talking to the Bot Connector (outgoing messages).

No app id: local development, no token. A password: MSAL client credentials against the
bot's authority (multi-tenant: botframework.com; single-tenant: the bot's Entra tenant).
A user-assigned managed identity: azure-identity. Tokens are cached until shortly before
they expire; the blocking MSAL call runs in a thread.
"""

from __future__ import annotations

import asyncio
import time

import msal

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
LOGIN = "https://login.microsoftonline.com"


def authority(app_type: str, aad_tenant_id: str = "", login_url: str | None = None) -> str:
    """Where the bot logs in: the configured login URL (TO_CHANNEL_FROM_BOT_LOGIN_URL, the
    whole authority), else Microsoft's, for botframework.com or the bot's Entra tenant."""
    tenant = aad_tenant_id if app_type == "SingleTenant" and aad_tenant_id else (
        "botframework.com")
    return login_url or f"{LOGIN}/{tenant}"


def confidential_client(app_id: str, password: str,
                        login: str) -> msal.ConfidentialClientApplication:
    """MSAL's client for the bot's app id and password, logging in at `login` only.

    For an authority that is not Microsoft's own (a sovereign or private cloud, a test's
    loopback server), MSAL would first ask login.microsoftonline.com to "discover" it:
    that is turned off, so nothing but the configured login URL is contacted.
    """
    microsoft = login.startswith(LOGIN)
    return msal.ConfidentialClientApplication(
        app_id,
        client_credential=password,
        authority=login,
        validate_authority=microsoft,
        instance_discovery=microsoft,
    )


class BotTokenProvider:
    def __init__(
        self,
        app_id: str,
        password: str = "",
        *,
        app_type: str = "MultiTenant",
        aad_tenant_id: str = "",
        login_url: str | None = None,
        scope: str = BOT_FRAMEWORK_SCOPE,
    ) -> None:
        self.app_id = app_id
        self.password = password
        self.app_type = app_type
        self.scope = scope
        self.authority = authority(app_type, aad_tenant_id, login_url)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    async def __call__(self) -> str | None:
        if not self.app_id:
            return None
        if self._token and time.time() < self._expires - 300:
            return self._token
        async with self._lock:
            if self._token and time.time() < self._expires - 300:
                return self._token
            self._token, self._expires = await asyncio.to_thread(self._acquire)
            return self._token

    def _acquire(self) -> tuple[str, float]:
        if self.app_type == "UserAssignedMSI":
            from azure.identity import ManagedIdentityCredential

            token = ManagedIdentityCredential(client_id=self.app_id).get_token(self.scope)
            return token.token, float(token.expires_on)
        if self._app is None:
            self._app = confidential_client(self.app_id, self.password, self.authority)
        result = self._app.acquire_token_for_client(scopes=[self.scope])
        if "access_token" not in result:
            raise PermissionError(
                f"could not get a Bot Framework token for app {self.app_id}: "
                f"{result.get('error')}: {result.get('error_description')}"
            )
        return result["access_token"], time.time() + float(result.get("expires_in", 3600))
