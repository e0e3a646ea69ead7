"""The Microsoft 365 Agents Toolkit files, checked offline with the Toolkit's own pieces (its
CLI pinned in tools/m365agentstoolkit): m365agents.yml and m365agents.local.yml against the
Toolkit's YAML schema, every ${{VARIABLE}} they read set before it is read, and the app
package their script step builds accepted by `atk validate --manifest-file`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for

from manifest.package import check_package
from tests.deploy_files import (
    ATK,
    INFRA,
    PLACEHOLDER,
    ROOT,
    TOOLKIT_SCHEMAS,
    app_package,
    parse_bicep,
    placeholders,
    read_env_file,
)

PROJECTS = {"m365agents.yml": "dev", "m365agents.local.yml": "local"}
LIFECYCLES = ("provision", "deploy", "publish")
# set by the person installing, or asked for by the Toolkit (which also generates
# RESOURCE_SUFFIX): each is listed, empty, in the env file, so that they see it
DEVELOPER = {"SWITCHBOARD_DEVELOPER_NAME", "SWITCHBOARD_DEVELOPER_URL",
             "SWITCHBOARD_PRIVACY_URL", "SWITCHBOARD_TERMS_URL"}
OPERATOR_INPUTS = {
    "dev": {"AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP_NAME", "RESOURCE_SUFFIX", *DEVELOPER},
    "local": {"BOT_ENDPOINT", "BOT_DOMAIN", *DEVELOPER},
}


def load_project(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def toolkit_schema(version: str) -> dict[str, Any]:
    path = TOOLKIT_SCHEMAS / version / "yaml.schema.json"
    assert path.is_file(), f"{path} is missing: run `bash scripts/setup --with-node`"
    return json.loads(path.read_text(encoding="utf-8"))


def schema_problems(project: dict[str, Any]) -> list[str]:
    schema = toolkit_schema(project["version"])
    validator = validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(project)]


# -- the Toolkit's schema ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PROJECTS)
def test_the_project_file_is_valid_for_the_toolkit(name: str) -> None:
    project = load_project(name)
    assert schema_problems(project) == []
    header = (ROOT / name).read_text(encoding="utf-8").splitlines()[0]
    assert f"/{project['version']}/yaml.schema.json" in header  # the editor checks the same


def test_a_step_the_toolkit_does_not_know_is_caught() -> None:
    project = load_project("m365agents.yml")
    deploy = project["deploy"][1]
    assert deploy["uses"] == "azureAppService/zipDeploy"
    del deploy["with"]["resourceId"]
    project["publish"][0]["with"]["command"] = "python"
    assert len(schema_problems(project)) == 2


# -- every variable is set before it is read --------------------------------------------------


def _arm_outputs(step: dict[str, Any], base: Path) -> set[str]:
    names: set[str] = set()
    for template in step["with"]["templates"]:
        outputs = parse_bicep(base / template["path"]).get("outputs", {})
        names |= {name.upper() for name in outputs}
    return names


def variable_problems(name: str, outputs_of=_arm_outputs) -> list[str]:
    """Each ${{X}} a step reads (its own text, and an ARM parameters file it fills) must be
    written by an earlier step, given a value in the env file, or be one of the inputs the
    person installing fills in (listed, empty, in the env file)."""
    environment = PROJECTS[name]
    env_file = read_env_file(ROOT / "env" / f".env.{environment}")
    inputs = OPERATOR_INPUTS[environment]
    problems = [f"{v} is an input but not listed in env/.env.{environment}"
                for v in sorted(inputs - set(env_file))]
    known = {k for k, v in env_file.items() if v} | inputs
    project = load_project(name)
    for lifecycle in LIFECYCLES:
        for index, step in enumerate(project.get(lifecycle, [])):
            read = placeholders(json.dumps(step))
            if step["uses"] == "arm/deploy":
                for template in step["with"]["templates"]:
                    parameters = (ROOT / template["parameters"]).read_text(encoding="utf-8")
                    read |= placeholders(parameters)
            for variable in sorted(read - known):
                problems.append(f"{lifecycle}[{index}] {step['uses']} reads {variable}, "
                                "which nothing sets before it")
            known |= set(step.get("writeToEnvironmentFile", {}).values())
            if step["uses"] == "arm/deploy":
                known |= outputs_of(step, ROOT)
    return problems


@pytest.mark.parametrize("name", PROJECTS)
def test_every_variable_is_set_before_it_is_read(name: str) -> None:
    assert variable_problems(name) == []


def test_a_variable_nobody_sets_is_caught() -> None:
    def without_resource_id(step: dict[str, Any], base: Path) -> set[str]:
        return _arm_outputs(step, base) - {"AZURE_APP_SERVICE_RESOURCE_ID"}

    assert variable_problems("m365agents.yml", without_resource_id) == [
        "deploy[1] azureAppService/zipDeploy reads AZURE_APP_SERVICE_RESOURCE_ID, "
        "which nothing sets before it"
    ]


def test_zip_deploy_sends_the_folder_the_package_step_writes() -> None:
    collect, deploy = load_project("m365agents.yml")["deploy"]
    args = shlex.split(collect["with"]["run"])
    assert args[:3] == ["python", "scripts/app_package.py", "build"]
    out = Path(args[args.index("--out") + 1])
    sent = Path(deploy["with"]["workingDirectory"]) / deploy["with"]["artifactFolder"]
    assert out == sent
    assert args[args.index("--config") + 1] == "${{SWITCHBOARD_CONFIG_FILE}}"
    bicep = parse_bicep(INFRA / "azure.bicep")["parameters"]
    parameters = (INFRA / "azure.parameters.json").read_text(encoding="utf-8")
    # the config checked before the deploy is the one the app is told to load
    assert re.search(r'"configFile":\s*\{\s*"value":\s*"\$\{\{SWITCHBOARD_CONFIG_FILE\}\}"',
                     parameters)
    assert "configFile" in bicep


# -- the app package the provision step builds, and the Toolkit's validate ---------------------


def _run_package_step(name: str, tmp_path: Path, values: dict[str, str]) -> Path:
    """Runs the project's `script` step that builds the app package, as the Toolkit would:
    its ${{...}} filled in, its `env` added to the environment, `python` the project's."""
    step = next(s for s in load_project(name)["provision"]
                if s["uses"] == "script" and "manifest build" in s["with"]["run"])

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("MICROSOFT", "SWITCHBOARD"))}
    env.update({key: fill(value) for key, value in step["env"].items()})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(fill(step["with"]["run"]), shell=True, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path / "build" / f"appPackage.{values['TEAMSFX_ENV']}.zip"


def _provisioned(environment: str) -> dict[str, str]:
    """The env file's values once provision has run and the installer filled the inputs."""
    values = read_env_file(ROOT / "env" / f".env.{environment}")
    values.update(
        TEAMS_APP_ID=str(uuid.uuid4()), BOT_ID=str(uuid.uuid4()),
        BOT_DOMAIN="switchboard1a2b3c.azurewebsites.net",
        SWITCHBOARD_DEVELOPER_NAME="Contoso IT",
        SWITCHBOARD_DEVELOPER_URL="https://help.contoso.com",
        SWITCHBOARD_PRIVACY_URL="https://help.contoso.com/privacy",
        SWITCHBOARD_TERMS_URL="https://help.contoso.com/terms",
    )
    return values


def _atk_validate(manifest: Path, home: Path) -> subprocess.CompletedProcess[str]:
    assert ATK.exists(), f"{ATK} is missing: run `bash scripts/setup --with-node`"
    env = {k: v for k, v in os.environ.items() if k != "HOME"}
    env["HOME"] = str(home)  # the CLI's caches and logs stay out of the real home
    return subprocess.run(
        [str(ATK), "validate", "--manifest-file", str(manifest), "--telemetry", "false"],
        env=env, capture_output=True, text=True, timeout=180,
    )


@pytest.fixture(scope="module")
def built_package(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    values = _provisioned("dev")
    where = tmp_path_factory.mktemp("provision")
    return _run_package_step("m365agents.yml", where, values), values


def test_the_provision_step_builds_the_package_of_this_bot(built_package) -> None:
    package, values = built_package
    manifest = check_package(package)
    assert manifest["id"] == values["TEAMS_APP_ID"]  # teamsApp/update finds the app by it
    assert manifest["bots"][0]["botId"] == values["BOT_ID"]
    assert manifest["validDomains"] == [values["BOT_DOMAIN"]]
    assert manifest["version"] == values["SWITCHBOARD_APP_VERSION"]


def test_the_toolkit_validates_the_package(built_package, tmp_path) -> None:
    with zipfile.ZipFile(built_package[0]) as z:
        z.extractall(tmp_path / "appPackage")
    done = _atk_validate(tmp_path / "appPackage" / "manifest.json", tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All passed" in done.stdout


def test_the_toolkit_validate_refuses_a_broken_manifest(built_package, tmp_path) -> None:
    with zipfile.ZipFile(built_package[0]) as z:
        z.extractall(tmp_path / "appPackage")
    path = tmp_path / "appPackage" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["developer"]["privacyUrl"]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    done = _atk_validate(path, tmp_path / "home")
    assert done.returncode != 0
    assert "privacyUrl" in done.stdout + done.stderr


# -- the Toolkit runs the deploy lifecycle -----------------------------------------------------


def _toolkit_project(tmp_path: Path, **env_values: str) -> tuple[Path, dict[str, str]]:
    """A copy of the project as the Toolkit sees it after provision, and an environment with
    nothing but the project's `python` and `node` on the PATH (so the Azure sign-in, which
    opens a browser, fails at once instead of waiting)."""
    project = tmp_path / "project"
    files = [source for source, _inside in app_package.package_files(ROOT)]
    files += [ROOT / "pyproject.toml", ROOT / "scripts" / "app_package.py",
              ROOT / "m365agents.yml", ROOT / "env" / ".env.dev"]
    for source in files:
        target = project / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    env_file = project / "env" / ".env.dev"
    text = env_file.read_text(encoding="utf-8")
    for name, value in env_values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, name
    env_file.write_text(text, encoding="utf-8")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = shutil.which("node")
    assert node, "node is missing: run `bash scripts/setup --with-node`"
    (bin_dir / "node").symlink_to(node)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k in ("LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(PATH=str(bin_dir), HOME=str(tmp_path / "home"), SHELL="/bin/sh")
    return project, env


def _atk_deploy(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ATK), "deploy", "--env", "dev", "--folder", str(project), "--telemetry", "false",
         "--interactive", "false"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


FAKE_SITE = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
             "/providers/Microsoft.Web/sites/switchboard1a2b3c")


def test_the_toolkit_zips_the_collected_app_for_app_service(tmp_path) -> None:
    """`atk deploy` runs the collect step and zips its folder for zip deploy; only the Azure
    sign-in, which needs a person, stops it."""
    project, env = _toolkit_project(tmp_path, AZURE_APP_SERVICE_RESOURCE_ID=FAKE_SITE)
    done = _atk_deploy(project, env)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Executing task: python scripts/app_package.py build --out ./build/app --config " \
           "examples/helpdesk.yaml" in output, output
    assert re.search(r"^wrote build/app: \d+ files$", output, flags=re.MULTILINE), output
    assert "Log in to your Azure account" in output  # the sign-in is where it stopped
    deployment = project / "build" / ".deployment" / "deployment.zip"
    with zipfile.ZipFile(deployment) as z:
        sent = set(z.namelist())
    assert sent == {inside for _source, inside in app_package.package_files(project)}


def test_a_config_that_does_not_load_stops_the_toolkits_deploy(tmp_path) -> None:
    project, env = _toolkit_project(tmp_path, AZURE_APP_SERVICE_RESOURCE_ID=FAKE_SITE,
                                    SWITCHBOARD_CONFIG_FILE="examples/kb/hr.yaml")
    done = _atk_deploy(project, env)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "hr.yaml" in output
    assert "azureAppService/zipDeploy was not executed" in output, output
    assert not (project / "build" / ".deployment").exists()
