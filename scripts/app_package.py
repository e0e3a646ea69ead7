"""Collects what App Service runs into one folder (and zip): the app's code, requirements.txt
for App Service's build (Oryx installs a Python app from requirements.txt, not from
pyproject.toml), the example help desk and the admin's own `config/`.

    python scripts/app_package.py requirements      # (re)writes requirements.txt
    python scripts/app_package.py build --out build/app [--zip build/app.zip]
                                        [--config examples/helpdesk.yaml]

The code is what pyproject.toml installs (`py-modules` and the packages it finds), so a new
package is deployed as soon as it is part of the project. Nothing else leaves the machine: no
virtual environment, node_modules, local data, env files or caches. `--config` checks the
tenants' configuration inside the package, as the app will load it, before anything is sent.

Exit codes: 0 done; 1 something to fix (stale requirements.txt, a config error); 2 misuse.
Standard library only, except `--config`, which needs the project installed (its venv).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "requirements.txt"
# besides the code: the example help desk, and the admin's own configuration if there is one
DATA_DIRS = ("examples", "config")
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class PackageProblem(Exception):
    """Something the person deploying must fix; the message says what and how."""


def read_project(root: Path = ROOT) -> dict:
    with (root / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def render_requirements(project: dict) -> str:
    """requirements.txt: exactly the `[project] dependencies` of pyproject.toml."""
    lines = [
        "# Generated from pyproject.toml's [project] dependencies by",
        "# `python scripts/app_package.py requirements`: do not edit by hand.",
        "# App Service's build (Oryx) installs the deployed app from this file.",
        *project["project"]["dependencies"],
    ]
    return "\n".join(lines) + "\n"


def check_requirements(root: Path = ROOT) -> None:
    expected = render_requirements(read_project(root))
    path = root / REQUIREMENTS
    actual = path.read_text(encoding="utf-8") if path.exists() else None
    if actual != expected:
        state = "is missing" if actual is None else "differs from pyproject.toml's dependencies"
        raise PackageProblem(
            f"{path}: {state}: run `python scripts/app_package.py requirements` and commit it"
        )


def code_paths(project: dict, root: Path = ROOT) -> list[Path]:
    """The modules and top-level packages pyproject.toml installs."""
    setuptools = project.get("tool", {}).get("setuptools", {})
    names = [f"{module}.py" for module in setuptools.get("py-modules", [])]
    patterns = setuptools.get("packages", {}).get("find", {}).get("include", [])
    names += sorted({p.rstrip("*").rstrip(".") for p in patterns if "." not in p.rstrip("*")})
    paths = [root / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise PackageProblem(f"pyproject.toml names {missing}, which do not exist in {root}")
    return paths


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.name.startswith(".") or child.name in SKIPPED_DIRS:
            continue
        if child.is_dir():
            yield from _files(child)
        elif child.suffix not in SKIPPED_SUFFIXES:
            yield child


def package_files(root: Path = ROOT) -> list[tuple[Path, str]]:
    """(source, path inside the package) of every file App Service gets."""
    project = read_project(root)
    tops = [*code_paths(project, root), root / REQUIREMENTS]
    tops += [root / name for name in DATA_DIRS if (root / name).is_dir()]
    return [(f, f.relative_to(root).as_posix()) for top in tops for f in _files(top)]


def _prepare(out: Path, sources: list[Path]) -> None:
    """An empty `out`; a folder that is not an earlier package is never emptied."""
    out = out.resolve()
    for source in sources:
        if source.resolve().is_relative_to(out) or out.is_relative_to(source.resolve()):
            raise PackageProblem(
                f"--out {out}: overlaps {source}: choose a folder of its own, such as build/app"
            )
    if out.exists():
        if any(out.iterdir()) and not (out / "app.py").is_file():
            raise PackageProblem(
                f"--out {out}: the folder is not empty and is not an earlier package: "
                "choose another, or empty it yourself"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build(out: Path, root: Path = ROOT, config: str | None = None,
          zip_path: Path | None = None) -> list[str]:
    """Writes the package into `out` (and `zip_path`); returns the paths inside it."""
    check_requirements(root)
    files = package_files(root)
    _prepare(out, [root / inside.split("/")[0] for _source, inside in files])
    for source, inside in files:
        target = out / inside
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    if config is not None:
        _check_config(out, config)
    if zip_path is not None:
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for _source, inside in files:
                archive.write(out / inside, inside)
    return [inside for _source, inside in files]


def _check_config(out: Path, config: str) -> None:
    """Loads the config from inside the package, as App Service will (SWITCHBOARD_CONFIG is
    relative to the app's folder there)."""
    if Path(config).is_absolute():
        raise PackageProblem(
            f"--config {config}: give the path inside the package (relative to the project, "
            "such as config/helpdesk.yaml), as SWITCHBOARD_CONFIG is in App Service"
        )
    path = out / config
    if not path.is_file():
        raise PackageProblem(
            f"--config {config}: not in the package; keep your configuration in config/ "
            f"(or examples/) so that it is deployed"
        )
    sys.path.insert(0, str(ROOT))
    from pipelines.loader import ConfigError, load_config

    try:
        load_config(path)
    except ConfigError as exc:
        raise PackageProblem(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app_package.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("requirements", help="write requirements.txt from pyproject.toml")
    make = commands.add_parser("build", help="collect the package into a folder (and a zip)")
    make.add_argument("--out", type=Path, required=True, help="the folder to write")
    make.add_argument("--zip", type=Path, help="also write this zip (for az webapp deploy)")
    make.add_argument("--config", help="check this config, relative to the package")
    args = parser.parse_args(argv)
    try:
        if args.command == "requirements":
            path = ROOT / REQUIREMENTS
            path.write_text(render_requirements(read_project()), encoding="utf-8")
            print(f"wrote {path}")
        else:
            inside = build(args.out, config=args.config, zip_path=args.zip)
            where = f"{args.out}" + (f" and {args.zip}" if args.zip else "")
            print(f"wrote {where}: {len(inside)} files")
    except PackageProblem as exc:
        print(f"app_package: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
