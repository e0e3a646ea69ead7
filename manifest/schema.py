"""The official Teams app manifest JSON schema, and a validator for it that works offline.

The schema (draft-04) is vendored in `manifest/schema/v1.30/` from the npm package
`@microsoft/app-manifest`. Python's `jsonschema` validates against it with two adjustments:

- **`\\p{L}` patterns.** Since v1.23 the schema has patterns such as `^[\\p{L}][\\p{L}0-9._]*$`
  (Unicode letter classes, as JavaScript's `u` flag reads them). Python's `re` rejects `\\p{...}`,
  so checking the schema itself fails (the metaschema's `"format": "regex"`), and so would
  validating a manifest that has such a field. The third-party `regex` module understands them.
  The validator class below replaces the `pattern` and `patternProperties` keywords with
  versions that compile with `regex`, and its format checker checks `"format": "regex"` with
  `regex` too, so the schema checks clean against the draft-04 metaschema.
- **`const`.** The schema says `"manifestVersion": {"const": "1.30"}`, a keyword from draft-06
  that draft-04 validators ignore. Microsoft's own validator (ajv) enforces it, so this one does.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import regex
from jsonschema import Draft4Validator, FormatChecker, validators
from jsonschema import _keywords as keywords
from jsonschema.exceptions import ValidationError

# The newest released manifest version @microsoft/app-manifest ships (it also ships
# devPreview, which is not a released version: the org catalog rejects it).
MANIFEST_VERSION = "1.30"
SCHEMA_URL = (
    f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/"
    "MicrosoftTeams.schema.json"
)
SCHEMA_PATH = (
    Path(__file__).resolve().parent / "schema" / f"v{MANIFEST_VERSION}"
    / "MicrosoftTeams.schema.json"
)
# where the same file is inside the npm package (the tests compare the two)
NPM_SCHEMA_PATH = (
    f"node_modules/@microsoft/app-manifest/build/json-schemas/teams/v{MANIFEST_VERSION}/"
    "MicrosoftTeams.schema.json"
)

__all__ = ["MANIFEST_VERSION", "SCHEMA_PATH", "SCHEMA_URL", "TeamsValidator", "load_schema",
           "validator"]


@cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                        schema: dict[str, Any]) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_formats = FormatChecker()


@_formats.checks("regex", raises=regex.error)
def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        _compiled(instance)
    return True


# draft-04 with `regex` patterns and `const`; `format` uses the checker above (plus the
# standard formats whose optional dependencies are installed)
TeamsValidator = validators.extend(
    Draft4Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "const": keywords.const},
)
for _name, _check in Draft4Validator.FORMAT_CHECKER.checkers.items():
    if _name != "regex":
        _formats.checkers.setdefault(_name, _check)


@cache
def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_schema(schema: dict[str, Any]) -> None:
    """Raise SchemaError unless `schema` is a valid draft-04 schema (patterns read by `regex`)."""
    meta = TeamsValidator(Draft4Validator.META_SCHEMA, format_checker=_formats)
    from jsonschema.exceptions import SchemaError, best_match

    error = best_match(meta.iter_errors(schema))
    if error is not None:
        raise SchemaError.create_from(error)


def validator(schema: dict[str, Any] | None = None) -> Any:
    """A validator for Teams manifests against `schema` (default: the vendored one)."""
    return TeamsValidator(schema if schema is not None else load_schema(), format_checker=_formats)
