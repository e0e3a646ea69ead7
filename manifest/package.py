"""Builds and checks the Teams app package: manifest.json and the two icons, zipped.

`build_package` fills the template (`manifest.template.json`) from `ManifestSettings`,
validates the result offline against the official manifest schema (vendored in
`manifest/schema/`), checks the icons, and writes the zip. Every mistake is reported at once,
each naming the field and saying how to fix it; nothing is written unless all is well.
"""

from __future__ import annotations

import copy
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
from jsonschema.exceptions import ValidationError, best_match

from manifest.icons import DEFAULT_COLOR, DEFAULT_OUTLINE, check_color, check_outline
from manifest.schema import MANIFEST_VERSION, load_schema, validator
from manifest.settings import FIELD_SOURCES, ManifestSettings

HERE = Path(__file__).resolve().parent
TEMPLATE_PATH = HERE / "manifest.template.json"
MANIFEST_NAME = "manifest.json"
COLOR_NAME = "color.png"
OUTLINE_NAME = "outline.png"
# Teams reads at most this much of a package
MAX_PACKAGE_BYTES = 20 * 1024 * 1024

__all__ = ["BuildResult", "PackageError", "build_package", "check_package", "problems_of",
           "render_manifest"]


class PackageError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the app package has {count}:\n{lines}")


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: dict[str, Any]


# -- the manifest ----------------------------------------------------------------------


def render_manifest(settings: ManifestSettings, template: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template filled from the settings. An empty setting leaves its field out, so the
    schema reports it as missing (with the setting that fills it)."""
    manifest = json.loads(template.read_text(encoding="utf-8"))
    bot_id = settings.bot_id.strip()
    domain = settings.domain.strip()

    def put(parent: dict[str, Any], key: str, value: str) -> None:
        value = value.strip()
        if value:
            parent[key] = value
        else:
            parent.pop(key, None)

    put(manifest, "id", settings.teams_app_id)
    put(manifest, "version", settings.version)
    put(manifest, "accentColor", settings.accent_color)
    put(manifest["name"], "short", settings.name)
    put(manifest["name"], "full", settings.full_name)
    put(manifest["description"], "short", settings.short_description)
    put(manifest["description"], "full", settings.full_description)
    developer = manifest["developer"]
    put(developer, "name", settings.developer_name)
    put(developer, "websiteUrl", settings.website_url)
    put(developer, "privacyUrl", settings.privacy_url)
    put(developer, "termsOfUseUrl", settings.terms_url)
    for bot in manifest.get("bots", []):
        put(bot, "botId", bot_id)
    if domain:
        manifest["validDomains"] = [domain]
    else:
        manifest.pop("validDomains", None)
    # the supervisor console, a personal tab on the bot's own domain (beside the chat)
    tabs = [t for t in manifest.get("staticTabs", []) if t.get("entityId") != "console"]
    if domain:
        console = f"https://{domain}/console/"
        tabs.append({"entityId": "console", "name": "Console", "contentUrl": console,
                     "websiteUrl": console, "scopes": ["personal"]})
    if any(t.get("entityId") != "conversations" for t in tabs):
        manifest["staticTabs"] = tabs
    else:
        manifest.pop("staticTabs", None)
    if bot_id:
        resource = f"api://{domain}/botid-{bot_id}" if domain else f"api://botid-{bot_id}"
        manifest["webApplicationInfo"] = {"id": bot_id, "resource": resource}
    else:
        manifest.pop("webApplicationInfo", None)
    return manifest


# -- what is wrong, in words -----------------------------------------------------------


def _field(path: Any) -> str:
    """`bots[0].botId` from a jsonschema path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the manifest)"


def _source_key(path: Any) -> str:
    return ".".join(str(p) for p in path)


def _how_to_set(path: Any) -> str:
    source = FIELD_SOURCES.get(_source_key(path))
    if source is None:
        return ""
    argument, variable = source
    if argument.endswith("-icon"):
        return f" ({argument}: {variable})"
    return f" (set it with {argument} or {variable})"


_PATTERNS = {
    r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$":
        "must be a GUID like 0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    r"^#[0-9a-fA-F]{6}$": "must be an HTML colour like #3F51B5",
    r"^[Hh][Tt][Tt][Pp][Ss]?://": "must be a web address starting with https://",
    r"^[Hh][Tt][Tt][Pp][Ss]://": "must be a web address starting with https://",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    """(field, what is wrong and how to fix it) for one schema error."""
    path = list(error.absolute_path)
    field = _field(path)
    kind = error.validator
    value = error.instance
    rule = error.validator_value
    if kind in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context))
    if kind == "required":
        missing = [name for name in rule if isinstance(value, dict) and name not in value]
        return [
            (_field([*path, name]), f"is missing: Teams requires it{_how_to_set([*path, name])}")
            for name in missing
        ]
    hint = _how_to_set(path)
    if kind == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in value if k not in allowed) if isinstance(value, dict) else []
        return [
            (_field([*path, name]),
             f"is not a field of manifest v{MANIFEST_VERSION}: remove it or check its spelling")
            for name in extra
        ]
    if kind == "maxLength":
        return [(field, f"is {len(value)} characters long; Teams allows at most {rule}: "
                        f"shorten it{hint}")]
    if kind == "minLength":
        return [(field, f"must be at least {rule} characters long{hint}")]
    if kind == "pattern":
        wanted = _PATTERNS.get(rule, f"must match the pattern {rule}")
        return [(field, f"{value!r} {wanted}{hint}")]
    if kind == "const":
        return [(field, f"must be {rule!r}, not {value!r}")]
    if kind == "enum":
        choices = ", ".join(repr(c) for c in rule)
        return [(field, f"{value!r} is not one of {choices}")]
    if kind == "type":
        wanted = rule if isinstance(rule, str) else " or ".join(rule)
        return [(field, f"must be {wanted}, not {_json_type(value)}{hint}")]
    if kind == "maxItems":
        return [(field, f"has {len(value)} entries; Teams allows at most {rule}: remove some")]
    if kind == "minItems":
        return [(field, f"needs at least {rule} entries{hint}")]
    if kind == "uniqueItems":
        return [(field, "lists the same entry twice: remove the duplicate")]
    return [(field, f"{error.message}{hint}")]


def _schema_problems(manifest: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    seen: set[str] = set()
    out = []
    errors = sorted(validator(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path))
    for error in errors:
        for field, message in _describe(error):
            line = f"{MANIFEST_NAME} > {field}: {message}"
            if line not in seen:
                seen.add(line)
                out.append(line)
    return out


def _extra_problems(manifest: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """What Teams rejects that the schema does not check."""
    out = []
    version = manifest.get("version")
    semver = schema.get("definitions", {}).get("semver", {}).get("pattern")
    if isinstance(version, str) and semver and not regex.search(semver, version):
        out.append(
            f"{MANIFEST_NAME} > version: {version!r} is not a version Teams accepts: use three "
            f"numbers like 1.0.0, and raise it on every update{_how_to_set(['version'])}"
        )
    for index, domain in enumerate(manifest.get("validDomains") or []):
        if not isinstance(domain, str):
            continue
        if "://" in domain or "/" in domain or " " in domain or not domain:
            out.append(
                f"{MANIFEST_NAME} > validDomains[{index}]: {domain!r} must be a host name "
                f"only, like bot.contoso.com (no https://, no path){_how_to_set(['validDomains'])}"
            )
    return out


def problems_of(
    manifest: dict[str, Any],
    files: dict[str, bytes],
    schema: dict[str, Any] | None = None,
) -> list[str]:
    """Everything wrong with a manifest and the package files it references."""
    schema = schema if schema is not None else load_schema()
    problems = _schema_problems(manifest, schema) + _extra_problems(manifest, schema)
    icons = manifest.get("icons") if isinstance(manifest.get("icons"), dict) else {}
    for key, check in (("color", check_color), ("outline", check_outline)):
        name = icons.get(key)
        if not isinstance(name, str):
            continue  # the schema reported it
        if name not in files:
            problems.append(
                f"icons.{key}: the manifest names {name!r} but the package has no such file: "
                f"add it at the zip's root"
            )
            continue
        problems.extend(check(files[name], name))
    return problems


# -- building and checking packages ----------------------------------------------------


def build_package(
    settings: ManifestSettings,
    out: Path,
    *,
    color: Path = DEFAULT_COLOR,
    outline: Path = DEFAULT_OUTLINE,
    schema: dict[str, Any] | None = None,
) -> BuildResult:
    """Validate, then write the zip. PackageError lists every problem; nothing is written then."""
    manifest = render_manifest(settings)
    files: dict[str, bytes] = {}
    problems: list[str] = []
    for name, path, key in ((COLOR_NAME, color, "color"), (OUTLINE_NAME, outline, "outline")):
        try:
            files[name] = Path(path).read_bytes()
        except OSError as exc:
            how = _how_to_set(["icons", key])
            problems.append(f"icons.{key}: cannot read {path}: {exc.strerror or exc}{how}")
    unread = tuple(f"icons.{key}: the manifest names" for key in ("color", "outline")
                   if any(p.startswith(f"icons.{key}: cannot read") for p in problems))
    problems += [p for p in problems_of(manifest, files, schema) if not p.startswith(unread)]
    if problems:
        raise PackageError(problems)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for name, data in files.items():
            zf.writestr(name, data)
    tmp.replace(out)
    return BuildResult(out, copy.deepcopy(manifest))


def read_package(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the files of a package; PackageError if it cannot be read."""
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise PackageError([f"{path}: cannot read it: {exc.strerror or exc}"]) from None
    if size > MAX_PACKAGE_BYTES:
        raise PackageError([f"{path}: is over {MAX_PACKAGE_BYTES // 1024 // 1024} MB"])
    try:
        with zipfile.ZipFile(path) as zf:
            files = {
                info.filename: zf.read(info)
                for info in zf.infolist()
                if not info.is_dir() and info.file_size <= MAX_PACKAGE_BYTES
            }
    except zipfile.BadZipFile:
        raise PackageError([f"{path}: not a zip file: build one with `manifest build`"]) from None
    if MANIFEST_NAME not in files:
        nested = [n for n in files if n.endswith("/" + MANIFEST_NAME)]
        hint = (f" (found {nested[0]}: zip the files themselves, not their folder)"
                if nested else "")
        raise PackageError([f"{path}: has no {MANIFEST_NAME} at its root{hint}"])
    try:
        manifest = json.loads(files[MANIFEST_NAME].decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError([f"{path}: {MANIFEST_NAME} is not valid JSON: {exc}"]) from None
    if not isinstance(manifest, dict):
        raise PackageError([f"{path}: {MANIFEST_NAME} must be a JSON object"])
    return manifest, files


def check_package(path: Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a valid package; PackageError with every problem otherwise."""
    manifest, files = read_package(path)
    problems = problems_of(manifest, files, schema)
    if problems:
        raise PackageError(problems)
    return manifest
