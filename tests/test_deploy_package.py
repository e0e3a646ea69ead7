"""What App Service gets (scripts/app_package.py): requirements.txt kept equal to pyproject.toml,
the code and the help desk's config and nothing else, and an app that runs from the package
alone, started as App Service starts it (`python app.py`, PORT, a config path relative to
the app's folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.app_process import free_port, running_app
from tests.deploy_files import APP_PACKAGE_SCRIPT, ROOT, app_package

CODE = {"app.py", "settings.py", "bots", "pipelines", "cards", "storage", "manifest", "admin",
        "console", "telemetry"}




def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(APP_PACKAGE_SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, Path]:
    """The package, as a folder and as a zip, built with the example config checked."""
    where = tmp_path_factory.mktemp("package")
    done = _run("build", "--out", str(where / "app"), "--zip", str(where / "app.zip"),
                "--config", "examples/helpdesk.yaml")
    assert done.returncode == 0, done.stderr
    return where / "app", where / "app.zip"


# -- requirements.txt ------------------------------------------------------------------------


def test_requirements_txt_is_pyprojects_dependencies() -> None:
    committed = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    project = app_package.read_project()
    assert committed == app_package.render_requirements(project)
    listed = [line for line in committed.splitlines() if line and not line.startswith("#")]
    assert listed == project["project"]["dependencies"]


def test_a_stale_requirements_txt_stops_the_package(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8").replace(
            '"aiohttp>=3.10,<4",', '"aiohttp>=3.10,<4",\n    "azure-monitor-opentelemetry>=1.6",'
        ),
        encoding="utf-8",
    )
    shutil.copy(ROOT / "requirements.txt", tmp_path / "requirements.txt")
    with pytest.raises(app_package.PackageProblem, match=r"differs from pyproject\.toml") as caught:
        app_package.build(tmp_path / "out", root=tmp_path)
    assert "python scripts/app_package.py requirements" in str(caught.value)
    assert not (tmp_path / "out").exists()


# -- what the package holds -------------------------------------------------------------------


def test_the_package_holds_the_code_the_config_and_nothing_else(package) -> None:
    folder, archive = package
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
    assert names == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {name.split("/")[0] for name in names} == CODE | {"requirements.txt", "examples"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # every file git tracks under those folders is there
    tracked = subprocess.run(
        ["git", "ls-files", *sorted(CODE), "examples"], cwd=ROOT, capture_output=True,
        text=True, check=True, timeout=60,
    ).stdout.split()
    assert tracked and set(tracked) <= names, set(tracked) - names


def _python_env(**values: str) -> dict[str, str]:
    """The environment App Service gives the app: its settings, nothing of this machine's
    Switchboard settings; the installed dependencies, and not the project's own checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("MICROSOFT", "SWITCHBOARD", "TO_BOT", "TO_CHANNEL",
                                        "COSMOS", "PYTHON"))
           and k not in ("HOST", "PORT")}
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # with -S, no .pth file is read: the editable install of this checkout is not on the path
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(values)
    return env


def _unzip(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        z.extractall(into)
    return into


def test_the_packaged_app_runs_from_the_package_alone(package, tmp_path) -> None:
    app_dir = _unzip(package[1], tmp_path / "wwwroot")
    where = subprocess.run(
        [sys.executable, "-S", "-c",
         "import app, bots, storage; print(app.__file__, *bots.__path__, *storage.__path__)"],
        cwd=app_dir, env=_python_env(), capture_output=True, text=True, timeout=60,
    )
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).resolve().is_relative_to(app_dir), where.stdout
    # the admin's tool works there too (an SSH session into the instance)
    admin = subprocess.run(
        [sys.executable, "-S", "-m", "admin", "config", "validate", "examples/helpdesk.yaml"],
        cwd=app_dir, env=_python_env(), capture_output=True, text=True, timeout=60,
    )
    assert admin.returncode == 0, admin.stdout + admin.stderr

    port = free_port()
    env = _python_env(PORT=str(port), SWITCHBOARD_HOST="127.0.0.1",
                      SWITCHBOARD_CONFIG="examples/helpdesk.yaml",
                      SWITCHBOARD_DB_PATH=str(tmp_path / "bot.sqlite3"),
                      SWITCHBOARD_TIMER_INTERVAL="0")
    with running_app([sys.executable, "-S", "app.py"], cwd=app_dir, env=env, port=port) as app:
        assert b'"status": "ok"' in app.health


def test_a_package_missing_a_module_does_not_run(package, tmp_path) -> None:
    """The check above would notice a package that leaves code out (nothing else on the path
    supplies it)."""
    app_dir = _unzip(package[1], tmp_path / "wwwroot")
    shutil.rmtree(app_dir / "storage")
    done = subprocess.run(
        [sys.executable, "-S", "app.py"], cwd=app_dir, env=_python_env(),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "No module named 'storage'" in done.stderr


# -- the config check and the folder --------------------------------------------------------


def test_a_config_that_does_not_load_stops_the_package(tmp_path) -> None:
    done = _run("build", "--out", str(tmp_path / "app"), "--config", "examples/kb/hr.yaml")
    assert done.returncode == 1
    assert done.stderr.startswith("app_package: ")
    assert "hr.yaml" in done.stderr
    missing = _run("build", "--out", str(tmp_path / "app"), "--config", "config/helpdesk.yaml")
    assert missing.returncode == 1
    assert "not in the package; keep your configuration in config/" in missing.stderr


def test_the_package_never_empties_a_folder_that_is_not_one(tmp_path) -> None:
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine", encoding="utf-8")
    done = _run("build", "--out", str(keep))
    assert done.returncode == 1
    assert "is not an earlier package" in done.stderr
    assert (keep / "notes.txt").read_text(encoding="utf-8") == "mine"
    inside = _run("build", "--out", str(ROOT))
    assert inside.returncode == 1
    assert "choose a folder of its own" in inside.stderr
