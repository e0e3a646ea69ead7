"""`manifest build`, `manifest check` and `manifest publish`: the Teams app package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from admin.common import PROBLEMS, err, out

app = typer.Typer(
    rich_markup_mode=None,
    help="Build, check and publish the Teams app package (appPackage.zip).",
    no_args_is_help=True,
)

def _report(exc) -> typer.Exit:
    for problem in exc.problems:
        err(f"error: {problem}")
    count = len(exc.problems)
    err(f"{count} problem{'s' if count != 1 else ''}: no package written")
    return typer.Exit(PROBLEMS)


@app.command()
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the zip.")] = Path(
        "appPackage.zip"),
    app_id: Annotated[str | None, typer.Option(
        help="The Teams app id, a GUID [SWITCHBOARD_TEAMS_APP_ID; default: the bot id].")] = None,
    bot_id: Annotated[str | None, typer.Option(
        help="The Azure Bot's Microsoft App ID [MICROSOFT_APP_ID].")] = None,
    name: Annotated[str | None, typer.Option(
        help="Short name, 30 characters at most [SWITCHBOARD_APP_NAME].")] = None,
    full_name: Annotated[str | None, typer.Option(
        help="Full name, 100 characters at most [SWITCHBOARD_APP_FULL_NAME].")] = None,
    version: Annotated[str | None, typer.Option(
        help="App version like 1.0.0; raise it on every update [SWITCHBOARD_APP_VERSION].")] = None,
    description: Annotated[str | None, typer.Option(
        help="Short description, 80 characters at most [SWITCHBOARD_APP_DESCRIPTION].")] = None,
    full_description: Annotated[str | None, typer.Option(
        help="Full description, 4000 characters at most "
             "[SWITCHBOARD_APP_FULL_DESCRIPTION].")] = None,
    developer_name: Annotated[str | None, typer.Option(
        help="Your organization's name, 32 characters at most "
             "[SWITCHBOARD_DEVELOPER_NAME].")] = None,
    website_url: Annotated[str | None, typer.Option(
        help="https:// address of your help desk's page [SWITCHBOARD_DEVELOPER_URL].")] = None,
    privacy_url: Annotated[str | None, typer.Option(
        help="https:// address of the privacy statement [SWITCHBOARD_PRIVACY_URL].")] = None,
    terms_url: Annotated[str | None, typer.Option(
        help="https:// address of the terms of use [SWITCHBOARD_TERMS_URL].")] = None,
    domain: Annotated[str | None, typer.Option(
        help="The bot's public host name, like bot.contoso.com [SWITCHBOARD_BOT_DOMAIN].")] = None,
    accent_color: Annotated[str | None, typer.Option(
        help="Colour behind the icon, like #3F51B5 [SWITCHBOARD_ACCENT_COLOR].")] = None,
    color_icon: Annotated[Path | None, typer.Option(
        help="A 192x192 PNG (default: the one in manifest/).")] = None,
    outline_icon: Annotated[Path | None, typer.Option(
        help="A 32x32 white-on-transparent PNG (default: the one in manifest/).")] = None,
) -> None:
    """Fill the manifest from the settings (environment variables) and these options, validate
    it offline against the official Teams manifest schema, check the icons, and write the zip
    (manifest.json, color.png, outline.png)."""
    from manifest.icons import DEFAULT_COLOR, DEFAULT_OUTLINE
    from manifest.package import PackageError, build_package
    from manifest.settings import ManifestSettings

    settings = ManifestSettings().with_overrides(
        app_id=app_id, bot_id=bot_id, name=name, full_name=full_name, version=version,
        short_description=description, full_description=full_description,
        developer_name=developer_name, website_url=website_url, privacy_url=privacy_url,
        terms_url=terms_url, domain=domain, accent_color=accent_color,
    )
    try:
        result = build_package(settings, output, color=color_icon or DEFAULT_COLOR,
                               outline=outline_icon or DEFAULT_OUTLINE)
    except PackageError as exc:
        raise _report(exc) from None
    manifest = result.manifest
    out(f"wrote {result.path}: {manifest['name']['short']} {manifest['version']} "
        f"(app id {manifest['id']}, manifest v{manifest['manifestVersion']})")


@app.command()
def check(
    package: Annotated[Path, typer.Argument(help="The zip to check.")] = Path("appPackage.zip"),
) -> None:
    """Check an existing package (ours or one edited by hand) the way `build` checks its own."""
    from manifest.package import PackageError, check_package

    try:
        manifest = check_package(package)
    except PackageError as exc:
        for problem in exc.problems:
            err(f"error: {problem}")
        raise typer.Exit(PROBLEMS) from None
    out(f"{package}: valid: {manifest['name']['short']} {manifest['version']} "
        f"(app id {manifest['id']}, manifest v{manifest['manifestVersion']})")


@app.command()
def publish(
    package: Annotated[Path, typer.Argument(help="The zip to publish.")] = Path("appPackage.zip"),
    client_id: Annotated[str | None, typer.Option(
        help="Client id of the Entra app registration to sign in with "
             "[SWITCHBOARD_PUBLISH_CLIENT_ID].")] = None,
    tenant_id: Annotated[str | None, typer.Option(
        help="Your Entra (Azure AD) tenant id [SWITCHBOARD_PUBLISH_TENANT_ID, or "
             "MICROSOFT_APP_TENANT_ID]; default for a sign-in: any work account.")] = None,
    client_secret: Annotated[str | None, typer.Option(
        help="Sign in as the application with this secret instead of as a person "
             "[SWITCHBOARD_PUBLISH_CLIENT_SECRET: prefer the variable].")] = None,
    device_code: Annotated[bool, typer.Option(
        "--device-code", help="Sign in as a person with a code, even if a secret is set.")] = False,
    requires_review: Annotated[bool, typer.Option(
        "--requires-review", help="Submit the app for an admin to approve instead of "
                                  "publishing it at once.")] = False,
    token: Annotated[str | None, typer.Option(
        envvar="SWITCHBOARD_GRAPH_TOKEN",
        help="A Graph access token you already have (skips the sign-in).")] = None,
    graph_url: Annotated[str | None, typer.Option(
        help="Microsoft Graph's base URL [SWITCHBOARD_GRAPH_URL; default "
             "https://graph.microsoft.com/v1.0].")] = None,
    authority_host: Annotated[str | None, typer.Option(
        help="The sign-in service [SWITCHBOARD_AUTHORITY_HOST; default "
             "https://login.microsoftonline.com].")] = None,
) -> None:
    """Upload the package to your organization's Teams app catalog through Microsoft Graph:
    a new app the first time, a new version of it after that (found by the manifest id).
    Without a secret, prints a code to sign in with as a Teams administrator."""
    from manifest.package import PackageError
    from manifest.publish import PublishError, publish_package
    from manifest.settings import ManifestSettings

    settings = ManifestSettings().with_overrides(
        publish_client_id=client_id, aad_tenant_id=tenant_id,
        publish_client_secret=client_secret, graph_url=graph_url, authority_host=authority_host,
    )
    try:
        result = publish_package(
            package, settings, token=token or None, device_code=True if device_code else None,
            requires_review=requires_review, prompt=err,
        )
    except PackageError as exc:
        for problem in exc.problems:
            err(f"error: {problem}")
        err("not published: fix the package first (`switchboard-admin manifest build`)")
        raise typer.Exit(PROBLEMS) from None
    except PublishError as exc:
        err(f"error: {exc}")
        raise typer.Exit(PROBLEMS) from None
    verb = "published" if result.action == "created" else "updated"
    state = f", {result.publishing_state}" if result.publishing_state else ""
    out(f"{verb} {result.display_name or result.external_id} {result.version or ''} in the app "
        f"catalog (catalog id {result.catalog_id}, app id {result.external_id}{state})")
