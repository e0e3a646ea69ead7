"""The Teams app package: the manifest, its schema, the icons, and every mistake reported."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from jsonschema import Draft4Validator
from jsonschema.exceptions import SchemaError
from PIL import Image

from manifest import make_icons
from manifest.icons import (
    DEFAULT_COLOR,
    DEFAULT_OUTLINE,
    check_color,
    check_outline,
    rgba_pixels,
)
from manifest.package import (
    PackageError,
    build_package,
    check_package,
    problems_of,
    render_manifest,
)
from manifest.schema import (
    MANIFEST_VERSION,
    NPM_SCHEMA_PATH,
    SCHEMA_PATH,
    check_schema,
    load_schema,
    validator,
)
from manifest.settings import ManifestSettings

ROOT = Path(__file__).resolve().parents[1]
NPM_TEAMS_SCHEMAS = ROOT / "node_modules/@microsoft/app-manifest/build/json-schemas/teams"
BOT_ID = "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
APP_ID = "6f0e3a52-9d1b-4c7e-8a2f-3b4c5d6e7f80"

GOOD = dict(
    bot_id=BOT_ID,
    app_id=APP_ID,
    name="Contoso Help",
    version="2.3.4",
    developer_name="Contoso IT",
    website_url="https://help.contoso.com",
    privacy_url="https://help.contoso.com/privacy",
    terms_url="https://help.contoso.com/terms",
    domain="bot.contoso.com",
)


def settings(**changes) -> ManifestSettings:
    # built from explicit values, not from this machine's environment
    return ManifestSettings.model_construct(**{**ManifestSettings().model_dump(), **GOOD,
                                               **changes})


def npm_schema() -> dict:
    path = ROOT / NPM_SCHEMA_PATH
    assert path.is_file(), f"{path} is missing: run `npm ci` at the repository root"
    return json.loads(path.read_text(encoding="utf-8"))


def png(size, mode="RGBA", colour=(255, 255, 255, 0), fmt="PNG") -> bytes:
    image = Image.new(mode, size, colour)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def problems(tmp_path: Path, **kwargs) -> list[str]:
    icons = {k: kwargs.pop(k) for k in ("color", "outline") if k in kwargs}
    with pytest.raises(PackageError) as caught:
        build_package(settings(**kwargs), tmp_path / "appPackage.zip", **icons)
    assert not (tmp_path / "appPackage.zip").exists(), "a package with problems was written"
    return caught.value.problems


# -- the schema ------------------------------------------------------------------------


def test_vendored_schema_is_the_npm_packages_copy():
    assert SCHEMA_PATH.read_bytes() == (ROOT / NPM_SCHEMA_PATH).read_bytes()


def test_manifest_version_is_the_newest_released_one_npm_ships():
    numbered = [d.name for d in NPM_TEAMS_SCHEMAS.iterdir() if re.fullmatch(r"v\d+\.\d+", d.name)]
    newest = max(numbered, key=lambda v: tuple(int(p) for p in v[1:].split(".")))
    assert newest == f"v{MANIFEST_VERSION}"
    # the template declares the same version and schema
    template = json.loads((ROOT / "manifest/manifest.template.json").read_text())
    assert template["manifestVersion"] == MANIFEST_VERSION
    assert f"/v{MANIFEST_VERSION}/" in template["$schema"]
    assert npm_schema()["properties"]["manifestVersion"]["const"] == MANIFEST_VERSION


def test_schema_needs_regex_for_unicode_letter_classes():
    schema = load_schema()
    # plain `re` (what jsonschema uses) rejects the schema's \p{L} patterns...
    with pytest.raises(SchemaError, match=r"p\{L\}"):
        Draft4Validator.check_schema(schema)
    # ...the `regex` module reads them: the schema is valid draft-04
    check_schema(schema)
    check_schema(npm_schema())
    letters = validator({"type": "string", "pattern": r"^[\p{L}][\p{L}0-9._]*$"})
    assert letters.is_valid("Größe.v2")
    assert letters.is_valid("日本語")
    assert not letters.is_valid("2fast")


def test_const_is_enforced():
    manifest = render_manifest(settings())
    manifest["manifestVersion"] = "1.29"
    assert any("manifestVersion: must be '1.30'" in p
               for p in problems_of(manifest, {}, load_schema()))


# -- a good package --------------------------------------------------------------------


def test_built_package_is_valid_and_complete(tmp_path):
    result = build_package(settings(), tmp_path / "out" / "appPackage.zip")
    with zipfile.ZipFile(result.path) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("color.png") == DEFAULT_COLOR.read_bytes()
        assert zf.read("outline.png") == DEFAULT_OUTLINE.read_bytes()
    # valid against the npm package's own copy of the official schema
    errors = [e.message for e in validator(npm_schema()).iter_errors(manifest)]
    assert errors == []
    assert manifest == result.manifest
    assert manifest["manifestVersion"] == MANIFEST_VERSION
    assert manifest["id"] == APP_ID
    assert manifest["version"] == "2.3.4"
    assert manifest["name"]["short"] == "Contoso Help"
    assert manifest["developer"]["name"] == "Contoso IT"
    assert manifest["developer"]["privacyUrl"] == "https://help.contoso.com/privacy"
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    (bot,) = manifest["bots"]
    assert bot["botId"] == BOT_ID
    assert bot["scopes"] == ["personal"]
    (commands,) = bot["commandLists"]
    assert commands["scopes"] == ["personal"]
    assert [c["title"] for c in commands["commands"]] == [
        "help", "restart", "status", "end", "transfer", "waiting"]
    assert all(c["description"] for c in commands["commands"])
    assert manifest["validDomains"] == ["bot.contoso.com"]
    assert manifest["webApplicationInfo"] == {
        "id": BOT_ID, "resource": f"api://bot.contoso.com/botid-{BOT_ID}"}
    assert check_package(result.path) == manifest


def test_app_id_defaults_to_the_bot_id(tmp_path):
    result = build_package(settings(app_id=""), tmp_path / "appPackage.zip")
    assert result.manifest["id"] == BOT_ID


def test_no_domain_no_valid_domains(tmp_path):
    manifest = build_package(settings(domain=""), tmp_path / "a.zip").manifest
    assert "validDomains" not in manifest
    assert manifest["webApplicationInfo"]["resource"] == f"api://botid-{BOT_ID}"


# -- the icons -------------------------------------------------------------------------


def test_committed_icons_are_what_teams_wants():
    color = Image.open(DEFAULT_COLOR)
    assert (color.format, color.size) == ("PNG", (192, 192))
    # not a blank square: many colours
    assert len(set(rgba_pixels(color))) > 50
    outline = Image.open(DEFAULT_OUTLINE)
    assert (outline.format, outline.size, outline.mode) == ("PNG", (32, 32), "RGBA")
    pixels = rgba_pixels(outline)
    assert outline.getpixel((0, 0))[3] == 0
    visible = [p for p in pixels if p[3] > 0]
    assert 50 < len([p for p in visible if p[3] >= 128]) < len(pixels) // 3
    assert all(p[:3] == (255, 255, 255) for p in visible)
    assert check_color(DEFAULT_COLOR.read_bytes()) == []
    assert check_outline(DEFAULT_OUTLINE.read_bytes()) == []


def test_make_icons_draws_the_committed_icons(tmp_path):
    assert make_icons.main([str(tmp_path)]) == 0
    for name in ("color.png", "outline.png"):
        made = Image.open(tmp_path / name).convert("RGBA")
        committed = Image.open(ROOT / "manifest" / name).convert("RGBA")
        assert made.size == committed.size
        diff = sum(abs(a - b) for a, b in zip(made.tobytes(), committed.tobytes(), strict=True))
        assert diff / (made.width * made.height * 4) < 2, f"{name} differs from make_icons"


# -- every class of mistake ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"app_id": "not-a-guid"},
         ["manifest.json > id: 'not-a-guid' must be a GUID", "--app-id",
          "SWITCHBOARD_TEAMS_APP_ID"]),
        ({"bot_id": "12345"}, ["bots[0].botId: '12345' must be a GUID", "MICROSOFT_APP_ID",
                               "webApplicationInfo.id"]),
        ({"name": ""}, ["manifest.json > name.short: is missing", "SWITCHBOARD_APP_NAME"]),
        ({"name": "N" * 31}, ["name.short: is 31 characters long; Teams allows at most 30",
                              "--name"]),
        ({"version": "1.0"}, ["version: '1.0' is not a version Teams accepts",
                              "like 1.0.0", "SWITCHBOARD_APP_VERSION"]),
        ({"version": "v2.0.0"}, ["version: 'v2.0.0' is not a version Teams accepts"]),
        ({"short_description": "d" * 81},
         ["description.short: is 81 characters long; Teams allows at most 80",
          "SWITCHBOARD_APP_DESCRIPTION"]),
        ({"full_description": "d" * 4001},
         ["description.full: is 4001 characters long; Teams allows at most 4000"]),
        ({"developer_name": ""}, ["developer.name: is missing", "SWITCHBOARD_DEVELOPER_NAME"]),
        ({"developer_name": "D" * 33}, ["developer.name: is 33 characters long"]),
        ({"website_url": "help.contoso.com"},
         ["developer.websiteUrl: 'help.contoso.com' must be a web address starting with "
          "https://", "SWITCHBOARD_DEVELOPER_URL"]),
        ({"privacy_url": ""}, ["developer.privacyUrl: is missing", "--privacy-url"]),
        ({"accent_color": "purple"}, ["accentColor: 'purple' must be an HTML colour"]),
        ({"domain": "https://bot.contoso.com/api"},
         ["validDomains[0]: 'https://bot.contoso.com/api' must be a host name only",
          "SWITCHBOARD_BOT_DOMAIN"]),
    ],
)
def test_manifest_mistakes(tmp_path, change, expected):
    found = problems(tmp_path, **change)
    text = "\n".join(found)
    for words in expected:
        assert words in text, f"{words!r} not in:\n{text}"
    # a message, not a raw jsonschema dump
    assert "Failed validating" not in text and "On instance" not in text


def test_every_mistake_at_once(tmp_path):
    found = problems(tmp_path, app_id="x", name="", version="one", accent_color="red",
                     short_description="s" * 100, outline=DEFAULT_COLOR)
    fields = ["id:", "name.short:", "version:", "accentColor:", "description.short:",
              "icons.outline"]
    for field in fields:
        assert any(field in p for p in found), field
    assert len(found) >= len(fields)


def test_colour_icon_of_the_wrong_size(tmp_path):
    small = write(tmp_path / "small.png", png((100, 100), "RGB", (10, 120, 200)))
    (problem,) = problems(tmp_path, color=small)
    assert problem == ("icons.color (color.png): is 100x100 pixels; Teams needs exactly 192x192: "
                       "resize it (`python -m manifest.make_icons` draws valid ones)")


def test_outline_icon_of_the_wrong_size(tmp_path):
    big = write(tmp_path / "big.png", png((64, 64), "RGBA", (255, 255, 255, 0)))
    (problem,) = problems(tmp_path, outline=big)
    assert "icons.outline (outline.png): is 64x64 pixels; Teams needs exactly 32x32" in problem


def test_outline_without_transparency(tmp_path):
    opaque = write(tmp_path / "o.png", png((32, 32), "RGB", (255, 255, 255)))
    (problem,) = problems(tmp_path, outline=opaque)
    assert "has no transparency (RGB image)" in problem
    assert "transparent background" in problem


def test_outline_with_an_opaque_background(tmp_path):
    filled = write(tmp_path / "f.png", png((32, 32), "RGBA", (255, 255, 255, 255)))
    (problem,) = problems(tmp_path, outline=filled)
    assert "its background is not transparent (only 0 of 1024 pixels are)" in problem


def test_outline_that_is_not_white(tmp_path):
    image = Image.open(DEFAULT_OUTLINE).convert("RGBA")
    for x in range(10, 20):
        image.putpixel((x, 16), (255, 0, 0, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    red = write(tmp_path / "red.png", buf.getvalue())
    (problem,) = problems(tmp_path, outline=red)
    assert "visible pixels are not white (e.g. #FF0000)" in problem
    assert "white (#FFFFFF) only" in problem


def test_icons_that_are_not_png(tmp_path):
    jpeg = write(tmp_path / "c.jpg", png((192, 192), "RGB", (1, 2, 3), fmt="JPEG"))
    garbage = write(tmp_path / "g.png", b"not an image at all")
    found = problems(tmp_path, color=jpeg, outline=garbage)
    assert any("icons.color (color.png): is a JPEG image; Teams accepts PNG only" in p
               for p in found)
    assert any("icons.outline (outline.png): not an image" in p for p in found)


def test_missing_icon_file(tmp_path):
    (problem,) = problems(tmp_path, color=tmp_path / "nope.png")
    assert problem.startswith("icons.color: cannot read")
    assert "--color-icon" in problem


# -- checking packages made elsewhere --------------------------------------------------


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _good_files() -> dict[str, bytes]:
    manifest = render_manifest(settings())
    return {"manifest.json": json.dumps(manifest).encode(), "color.png": DEFAULT_COLOR.read_bytes(),
            "outline.png": DEFAULT_OUTLINE.read_bytes()}


def test_check_a_hand_edited_package(tmp_path):
    files = _good_files()
    manifest = json.loads(files["manifest.json"])
    manifest["botz"] = []
    manifest["bots"][0]["scopes"] = ["personal", "everywhere"]
    del files["outline.png"]
    files["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(PackageError) as caught:
        check_package(_zip(tmp_path / "p.zip", files))
    text = "\n".join(caught.value.problems)
    assert "manifest.json > botz: is not a field of manifest v1.30: remove it" in text
    assert "bots[0].scopes[1]: 'everywhere' is not one of" in text
    assert ("icons.outline: the manifest names 'outline.png' but the package has no such file"
            in text)


def test_check_a_zipped_folder(tmp_path):
    files = {f"appPackage/{k}": v for k, v in _good_files().items()}
    with pytest.raises(PackageError, match="zip the files themselves, not their folder"):
        check_package(_zip(tmp_path / "p.zip", files))


def test_check_not_a_zip(tmp_path):
    with pytest.raises(PackageError, match="not a zip file"):
        check_package(write(tmp_path / "p.zip", b"hello"))
