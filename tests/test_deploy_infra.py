"""infra/: the Bicep parses, its modules are wired right, every app setting it passes is one
the app (or a library, or App Service) reads, and the Cosmos containers file has the shape the
Bicep reads. No Bicep compiler runs offline here, so these are the checks that can be made;
docs/install.md says what only a real deployment proves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from lark.exceptions import UnexpectedInput
from pydantic import AliasChoices

from app import Settings
from telemetry.config import VARIABLES as TELEMETRY_VARIABLES
from tests.deploy_files import (
    INFRA,
    MAIN_BICEP,
    ROOT,
    bicep_files,
    parse_bicep,
    required_params,
)

COSMOS_BICEP = INFRA / "cosmos.bicep"
CONTAINERS = INFRA / "cosmos-containers.json"
CONTAINERS_SCHEMA = INFRA / "cosmos-containers.schema.json"
PARAMETERS = INFRA / "azure.parameters.json"

# Settings the Bicep passes that app.py's Settings does not read, and who reads them
LIBRARY_SETTINGS = {
    # azure-identity: DefaultAzureCredential's managed identity credential signs in as this
    # user-assigned identity (the app creates DefaultAzureCredential() for Cosmos DB)
    "AZURE_CLIENT_ID",
}
# App Service's own settings: its build (SCM_*), its containers and warm-up (WEBSITE(S)_*)
APP_SERVICE_PREFIXES = ("SCM_", "WEBSITES_", "WEBSITE_")
# what the production shape must pass, and what it must never (it signs in with an identity)
REQUIRED_SETTINGS = {
    "MICROSOFT_APP_ID", "MICROSOFT_APP_TYPE", "MICROSOFT_APP_TENANT_ID", "AZURE_CLIENT_ID",
    "SWITCHBOARD_HOST", "PORT", "SWITCHBOARD_STORE", "COSMOS_ENDPOINT", "COSMOS_DATABASE",
    "SWITCHBOARD_CONFIG", "SCM_DO_BUILD_DURING_DEPLOYMENT",
    # telemetry/ exports traces, metrics and logs to Application Insights with it
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
}
FORBIDDEN_SETTINGS = {"MICROSOFT_APP_PASSWORD", "COSMOS_KEY", "SWITCHBOARD_ALLOW_UNAUTHENTICATED"}


# -- the Bicep parses, and its files fit together -------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_parses(path: Path) -> None:
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_a_bicep_syntax_error_is_caught() -> None:
    text = COSMOS_BICEP.read_text(encoding="utf-8")
    text = text.replace("kind: 'GlobalDocumentDB'\n", "kind: \n")
    with pytest.raises(UnexpectedInput):
        parse_bicep(COSMOS_BICEP, text)


def module_problems(path: Path, text: str | None = None) -> list[str]:
    """What is wrong in how `path` calls its modules: a module file that does not exist, a
    parameter it does not declare, a required one not passed, an output it does not have."""
    text = path.read_text(encoding="utf-8") if text is None else text
    parsed = parse_bicep(path, text)
    problems = []
    targets: dict[str, dict[str, Any]] = {}
    for symbol, module in parsed.get("modules", {}).items():
        target = path.parent / module["detail"]["path"]
        if not target.is_file():
            problems.append(f"module {symbol}: {target} does not exist")
            continue
        declared = parse_bicep(target)
        targets[symbol] = declared
        passed = set(module["config"].get("params", {}))
        for name in sorted(passed - set(declared.get("parameters", {}))):
            problems.append(f"module {symbol}: {target.name} has no parameter {name}")
        for name in sorted(required_params(declared) - passed):
            problems.append(f"module {symbol}: required parameter {name} is not passed")
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text):
        if symbol in targets and output not in targets[symbol].get("outputs", {}):
            problems.append(f"module {symbol} has no output {output}")
    return problems


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_modules_are_called_with_their_parameters(path: Path) -> None:
    assert module_problems(path) == []


def test_a_miswired_module_is_caught() -> None:
    text = MAIN_BICEP.read_text(encoding="utf-8")
    assert "    databaseName: cosmosDatabaseName\n" in text
    renamed = text.replace(
        "    databaseName: cosmosDatabaseName\n", "    dbName: cosmosDatabaseName\n"
    )
    renamed = renamed.replace("cosmos.outputs.endpoint", "cosmos.outputs.url", 1)
    assert module_problems(MAIN_BICEP, renamed) == [
        "module cosmos: cosmos.bicep has no parameter dbName",
        "module cosmos: required parameter databaseName is not passed",
        "module cosmos has no output url",
    ]


def unused_symbols(path: Path, text: str | None = None) -> list[str]:
    """Parameters and variables declared and never used (Bicep's linter warns of them)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    parsed = parse_bicep(path, text)
    # without comment lines and descriptions, where a name may be mentioned without being used
    code = re.sub(r"(?m)^\s*//.*$|@description\('(?:[^'\\]|\\.)*'\)", "", text)
    return [
        f"{kind} {name}"
        for kind in ("parameters", "variables")
        for name in parsed.get(kind, {})
        if len(re.findall(rf"(?<![\w.']){re.escape(name)}\b", code)) < 2
    ]


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_parameter_and_variable_is_used(path: Path) -> None:
    assert unused_symbols(path) == []


def test_an_unused_parameter_is_caught() -> None:
    text = COSMOS_BICEP.read_text(encoding="utf-8").replace(
        "isZoneRedundant: zoneRedundant", "isZoneRedundant: false"
    )
    assert unused_symbols(COSMOS_BICEP, text) == ["parameters zoneRedundant"]


def test_files_the_bicep_loads_exist() -> None:
    loaded = [
        (path, name)
        for path in bicep_files()
        for name in re.findall(r"load\w+Content\('([^']+)'", path.read_text(encoding="utf-8"))
    ]
    assert (COSMOS_BICEP, "cosmos-containers.json") in loaded
    for path, name in loaded:
        assert (path.parent / name).is_file(), f"{path} loads {name}, which does not exist"


def test_the_parameters_file_fits_the_template() -> None:
    parameters = set(json.loads(_without_placeholders(PARAMETERS))["parameters"])
    declared = parse_bicep(MAIN_BICEP)["parameters"]
    assert parameters <= set(declared), f"not in azure.bicep: {parameters - set(declared)}"
    assert required_params(parse_bicep(MAIN_BICEP)) <= parameters


def _without_placeholders(path: Path) -> str:
    """The parameters file as JSON, its ${{...}} placeholders (some unquoted, for numbers and
    booleans) replaced by a number, as the Toolkit fills them before parsing."""
    return re.sub(r"\$\{\{\s*\w+\s*\}\}", "0", path.read_text(encoding="utf-8"))


# -- app settings: every one is read by someone ---------------------------------------------


def app_settings(text: str | None = None) -> dict[str, Any]:
    """The app settings of azure.bicep, name -> value (pycep's form of the expression)."""
    parsed = parse_bicep(MAIN_BICEP, text)
    settings = parsed["variables"]["appSettings"]["value"]
    names = [s["name"] for s in settings]
    assert len(names) == len(set(names)), f"app settings passed twice: {names}"
    assert "appSettings" in json.dumps(parsed["variables"]["siteConfig"]), (
        "siteConfig no longer uses the appSettings variable"
    )
    return {s["name"]: s["value"] for s in settings}


def names_the_app_reads() -> set[str]:
    """The environment variables of app.py's Settings (their validation aliases), and those
    telemetry/ reads (checked with the settings at start)."""
    names: set[str] = set(TELEMETRY_VARIABLES)
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(field_name.upper())
    return names


def unread_settings(names: set[str]) -> set[str]:
    return {
        name for name in names
        if name not in names_the_app_reads()
        and name not in LIBRARY_SETTINGS
        and not name.startswith(APP_SERVICE_PREFIXES)
    }


def test_every_app_setting_is_read_by_the_app_a_library_or_app_service() -> None:
    assert unread_settings(set(app_settings())) == set()


def test_a_setting_nobody_reads_is_caught() -> None:
    text = MAIN_BICEP.read_text(encoding="utf-8").replace(
        "name: 'SWITCHBOARD_LOG_LEVEL'", "name: 'SWITCHBOARD_LOGLEVEL'"
    )
    assert unread_settings(set(app_settings(text))) == {"SWITCHBOARD_LOGLEVEL"}


def test_the_library_settings_are_the_libraries_own() -> None:
    from azure.identity._constants import EnvironmentVariables

    assert EnvironmentVariables.AZURE_CLIENT_ID == "AZURE_CLIENT_ID"
    assert not LIBRARY_SETTINGS & names_the_app_reads(), "the app reads it: not a library's"


def test_the_production_settings_are_there_and_no_secret_is() -> None:
    settings = app_settings()
    assert set(settings) >= REQUIRED_SETTINGS, REQUIRED_SETTINGS - set(settings)
    assert not FORBIDDEN_SETTINGS & set(settings)
    # the bot's app id, the identity DefaultAzureCredential uses, and the Azure Bot's app id
    # are all the managed identity's client id
    client_id = settings["MICROSOFT_APP_ID"]
    assert settings["AZURE_CLIENT_ID"] == client_id
    assert json.dumps(client_id) == json.dumps(
        {"operator": {"type": "property_accessor", "operands": {
            "operand_1": "identity", "operand_2": {"operator": {
                "type": "property_accessor",
                "operands": {"operand_1": "properties", "operand_2": "clientId"}}}}}}
    )
    bot = parse_bicep(MAIN_BICEP)["modules"]["bot"]["config"]["params"]
    assert bot["identityClientId"] == client_id


def test_the_literal_settings_are_valid_for_the_app(monkeypatch) -> None:
    """The values the Bicep writes (literals, and its parameters' defaults) load into app.py's
    Settings: an app type or store name the app does not know fails here."""
    declared = parse_bicep(MAIN_BICEP)["parameters"]

    def value_of(expression: Any) -> str:
        # pycep writes a literal and a bare identifier alike, as a string
        if isinstance(expression, str):
            return str(declared[expression]["default"]) if expression in declared else expression
        function = expression.get("function", {})
        if function.get("type") == "string":
            return value_of(function["parameters"]["value_to_convert"])
        return "from-azure"  # an identity's property or a module's output

    read = names_the_app_reads()
    for name in read:
        monkeypatch.delenv(name, raising=False)
    for name, expression in app_settings().items():
        if name in read:
            monkeypatch.setenv(name, value_of(expression))
    settings = Settings()
    assert (settings.app_type, settings.store, settings.host) == (
        "UserAssignedMSI", "cosmos", "0.0.0.0"
    )
    assert settings.port == declared["appPort"]["default"]
    assert settings.config_path == declared["configFile"]["default"]
    assert (ROOT / settings.config_path).is_file()
    assert settings.log_level == declared["logLevel"]["default"]


# -- the Cosmos containers: the file's shape is the one the Bicep reads ----------------------


def containers_schema() -> dict[str, Any]:
    schema = json.loads(CONTAINERS_SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return schema


def container_problems(document: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(containers_schema())
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    names = [c.get("name") for c in document.get("containers", []) if isinstance(c, dict)]
    problems += [f"container {n!r} is listed twice" for n in sorted({n for n in names
                                                                      if names.count(n) > 1})]
    return problems


def test_the_containers_file_has_the_shape_the_bicep_reads() -> None:
    document = json.loads(CONTAINERS.read_text(encoding="utf-8"))
    assert container_problems(document) == []
    assert {c["name"] for c in document["containers"]} >= {"tenant_data", "conversations", "config"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c[0].pop("partitionKey"), "'partitionKey' is a required property"),
        (lambda c: c[0]["partitionKey"].pop("version"), "is not valid under any of the given"),
        (lambda c: c[1]["partitionKey"]["paths"].append("/x"), "is not valid under any of the"),
        (lambda c: c[1].update(defaultTtl=0), "is not valid under any of the given schemas"),
        (lambda c: c[1].update(ttl=60), "Additional properties are not allowed"),
        (lambda c: c[2]["indexingPolicy"]["includedPaths"].append({"path": "type"}),
         "does not match"),
        (lambda c: c.append(copy.deepcopy(c[0])), "container 'tenant_data' is listed twice"),
    ],
    ids=["no-partition-key", "multihash-without-version", "hash-with-two-paths", "ttl-zero",
         "unknown-field", "bad-index-path", "duplicate"],
)
def test_a_container_entry_of_the_wrong_shape_is_caught(change, expected: str) -> None:
    document = json.loads(CONTAINERS.read_text(encoding="utf-8"))
    change(document["containers"])
    problems = container_problems(document)
    assert any(expected in p for p in problems), problems


def fields_the_bicep_reads(text: str | None = None) -> set[str]:
    """The fields of a container entry that cosmos.bicep's loop reads (`entry.x`, and
    `contains(entry, 'x')`)."""
    loop = parse_bicep(COSMOS_BICEP, text)["resources"]["container"]["config"]
    item = loop["loop_type"]["detail"]["item_name"]
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            operator = node.get("operator", {})
            operands = operator.get("operands", {}) if isinstance(operator, dict) else {}
            if operator.get("type") == "property_accessor" and operands.get("operand_1") == item:
                found.add(operands["operand_2"])
            function = node.get("function", {})
            if function.get("type") == "contains" and function["parameters"]["container"] == item:
                found.add(function["parameters"]["item_to_find"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(loop)
    return found


def test_the_bicep_reads_every_field_of_a_container_entry_and_no_other() -> None:
    fields = set(containers_schema()["definitions"]["container"]["properties"])
    assert fields_the_bicep_reads() == fields
    text = COSMOS_BICEP.read_text(encoding="utf-8")
    assert "loadJsonContent('cosmos-containers.json', '$.containers')" in text
    dropped = text.replace("indexingPolicy: entry.indexingPolicy\n", "\n")
    assert fields_the_bicep_reads(dropped) == fields - {"indexingPolicy"}
