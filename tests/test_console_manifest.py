"""The app package gains the console as a personal tab on the bot's domain, and stays valid
against the official manifest schema (the npm package's copy)."""

from __future__ import annotations

import json
import zipfile

from manifest.package import build_package, check_package
from tests.test_manifest import npm_schema, settings, validator


def test_the_package_has_the_console_tab_beside_the_chat(tmp_path):
    result = build_package(settings(), tmp_path / "appPackage.zip")
    with zipfile.ZipFile(result.path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert [e.message for e in validator(npm_schema()).iter_errors(manifest)] == []
    chat, console = manifest["staticTabs"]
    assert chat == {"entityId": "conversations", "scopes": ["personal"]}
    assert console == {"entityId": "console", "name": "Console", "scopes": ["personal"],
                       "contentUrl": "https://bot.contoso.com/console/",
                       "websiteUrl": "https://bot.contoso.com/console/"}
    assert "bot.contoso.com" in manifest["validDomains"]
    assert check_package(result.path) == manifest


def test_without_a_domain_there_is_no_console_tab(tmp_path):
    manifest = build_package(settings(domain=""), tmp_path / "a.zip").manifest
    assert "staticTabs" not in manifest
