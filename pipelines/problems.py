"""Validation errors as sentences an admin can act on (config files, knowledge bases)."""

from __future__ import annotations

from pydantic import ValidationError

UNKNOWN_SETTING = "unknown setting: remove it or check its spelling"


def explain(
    exc: Exception,
    *,
    unknown: str = UNKNOWN_SETTING,
    patterns: dict[str, str] | None = None,
) -> list[str]:
    """One line per error, "`field.path`: what is wrong"; `patterns` words a field's pattern."""
    if not isinstance(exc, ValidationError):
        return [str(exc)]
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = unknown
        elif err["type"] == "missing":
            msg = "required setting is missing"
        elif err["type"] == "string_pattern_mismatch" and patterns and loc in patterns:
            msg = patterns[loc]
        out.append(f"`{loc}`: {msg}" if loc else msg)
    return out
