"""Reading the deployment files for the tests: Bicep (parsed by pycep-parser, since no Bicep
compiler runs offline here), the Toolkit's env files, and where the pinned Toolkit lives."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "azure.bicep"
TOOLKIT = ROOT / "tools" / "m365agentstoolkit" / "node_modules"
ATK = TOOLKIT / ".bin" / "atk"
TOOLKIT_SCHEMAS = TOOLKIT / "@microsoft" / "teamsfx-core" / "resource" / "yaml-schema"

APP_PACKAGE_SCRIPT = ROOT / "scripts" / "app_package.py"

PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parse_cached(path: Path, text: str) -> dict[str, Any]:
    return BicepParser().parse(text=text)


def parse_bicep(path: Path, text: str | None = None) -> dict[str, Any]:
    """pycep's JSON of a Bicep file: parameters, variables, resources, modules, outputs.

    A syntax error raises (lark's UnexpectedInput), naming the line and column."""
    return _parse_cached(path, path.read_text(encoding="utf-8") if text is None else text)


def required_params(parsed: dict[str, Any]) -> set[str]:
    """Parameters with no default: a caller must pass them."""
    return {name for name, p in parsed.get("parameters", {}).items() if p.get("default") is None}


def read_env_file(path: Path) -> dict[str, str]:
    """A Toolkit env file (`NAME=value` lines, `#` comments)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ValueError(f"{path}:{number}: not NAME=value: {line!r}")
        values[name] = value
    return values


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def _load_app_package():
    """scripts/app_package.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("app_package", APP_PACKAGE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app_package = _load_app_package()
