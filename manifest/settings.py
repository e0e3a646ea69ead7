"""What the app package and its publishing need to know, from environment variables.

Every setting can also be given on the command line (`switchboard-admin manifest build --help`);
an argument wins over the environment. The bot's own registration (`MICROSOFT_APP_ID`,
`MICROSOFT_APP_TENANT_ID`) is read under the same names as `app.Settings` reads it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ManifestSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # the Azure Bot's Microsoft App ID: the manifest's bot id, and its app id unless set apart
    bot_id: str = Field("", validation_alias=_env("MICROSOFT_APP_ID", "MicrosoftAppId"))
    # the Teams app id (manifest `id`); empty = the bot id, the usual choice for a bot app
    app_id: str = Field("", validation_alias=_env("SWITCHBOARD_TEAMS_APP_ID"))
    name: str = Field("Switchboard", validation_alias=_env("SWITCHBOARD_APP_NAME"))
    full_name: str = Field("Switchboard help desk",
                           validation_alias=_env("SWITCHBOARD_APP_FULL_NAME"))
    version: str = Field("1.0.0", validation_alias=_env("SWITCHBOARD_APP_VERSION"))
    short_description: str = Field(
        "Get help from IT, HR and the other departments in one chat.",
        validation_alias=_env("SWITCHBOARD_APP_DESCRIPTION"),
    )
    full_description: str = Field(
        "Switchboard is your organization's help desk in Teams. Tell it what you need: it "
        "asks a few questions, sends you to the right department (IT, HR, Legal...) and "
        "connects you with a person when one is needed. Type help at any time to see where "
        "you are, or restart to begin again. Agents of each department take the chats here "
        "too: end, transfer, waiting and status are their commands.",
        validation_alias=_env("SWITCHBOARD_APP_FULL_DESCRIPTION"),
    )
    developer_name: str = Field("", validation_alias=_env("SWITCHBOARD_DEVELOPER_NAME"))
    website_url: str = Field("", validation_alias=_env("SWITCHBOARD_DEVELOPER_URL"))
    privacy_url: str = Field("", validation_alias=_env("SWITCHBOARD_PRIVACY_URL"))
    terms_url: str = Field("", validation_alias=_env("SWITCHBOARD_TERMS_URL"))
    # the public host name of the bot's messaging endpoint (bot.contoso.com)
    domain: str = Field("", validation_alias=_env("SWITCHBOARD_BOT_DOMAIN"))
    accent_color: str = Field("#3F51B5", validation_alias=_env("SWITCHBOARD_ACCENT_COLOR"))

    # -- publishing through Microsoft Graph -------------------------------------------
    graph_url: str = Field(DEFAULT_GRAPH_URL, validation_alias=_env("SWITCHBOARD_GRAPH_URL"))
    authority_host: str = Field(
        DEFAULT_AUTHORITY_HOST, validation_alias=_env("SWITCHBOARD_AUTHORITY_HOST")
    )
    # the Microsoft Entra tenant whose app catalog gets the app (not a help-desk tenant)
    aad_tenant_id: str = Field(
        "", validation_alias=_env("SWITCHBOARD_PUBLISH_TENANT_ID", "MICROSOFT_APP_TENANT_ID",
                                  "MicrosoftAppTenantId")
    )
    # the app registration the admin signs in with (device code) or that holds the secret
    publish_client_id: str = Field("", validation_alias=_env("SWITCHBOARD_PUBLISH_CLIENT_ID"))
    publish_client_secret: str = Field(
        "", validation_alias=_env("SWITCHBOARD_PUBLISH_CLIENT_SECRET")
    )

    def with_overrides(self, **values: Any) -> ManifestSettings:
        """A copy with the arguments given on the command line (None: keep the setting)."""
        return self.model_copy(update={k: v for k, v in values.items() if v is not None})

    @property
    def teams_app_id(self) -> str:
        return self.app_id or self.bot_id

    @property
    def authority(self) -> str:
        tenant = self.aad_tenant_id or "organizations"
        return f"{self.authority_host.rstrip('/')}/{tenant}"

    @property
    def graph_origin(self) -> str:
        """The resource Graph tokens are for: scheme and host of the Graph URL."""
        parts = urlsplit(self.graph_url)
        return f"{parts.scheme}://{parts.netloc}"


# which setting fills each manifest field, for error messages: field -> (argument, variable)
FIELD_SOURCES: dict[str, tuple[str, str]] = {
    "id": ("--app-id", "SWITCHBOARD_TEAMS_APP_ID, which defaults to MICROSOFT_APP_ID"),
    "bots.0.botId": ("--bot-id", "MICROSOFT_APP_ID"),
    "webApplicationInfo.id": ("--bot-id", "MICROSOFT_APP_ID"),
    "webApplicationInfo.resource": ("--domain", "SWITCHBOARD_BOT_DOMAIN"),
    "version": ("--version", "SWITCHBOARD_APP_VERSION"),
    "name.short": ("--name", "SWITCHBOARD_APP_NAME"),
    "name.full": ("--full-name", "SWITCHBOARD_APP_FULL_NAME"),
    "description.short": ("--description", "SWITCHBOARD_APP_DESCRIPTION"),
    "description.full": ("--full-description", "SWITCHBOARD_APP_FULL_DESCRIPTION"),
    "developer.name": ("--developer-name", "SWITCHBOARD_DEVELOPER_NAME"),
    "developer.websiteUrl": ("--website-url", "SWITCHBOARD_DEVELOPER_URL"),
    "developer.privacyUrl": ("--privacy-url", "SWITCHBOARD_PRIVACY_URL"),
    "developer.termsOfUseUrl": ("--terms-url", "SWITCHBOARD_TERMS_URL"),
    "validDomains": ("--domain", "SWITCHBOARD_BOT_DOMAIN"),
    "accentColor": ("--accent-color", "SWITCHBOARD_ACCENT_COLOR"),
    "icons.color": ("--color-icon", "a 192x192 PNG"),
    "icons.outline": ("--outline-icon", "a 32x32 white-on-transparent PNG"),
}
