"""scripts/setup and scripts/run, run as a person runs them, with a stand-in Python.

The stand-in `.venv/bin/python` records its arguments instead of installing anything, so the
tests see exactly when pip would run: on the first setup, and again only when pyproject.toml
(or the setup script) changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
"""


def project(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    for name in ("scripts/setup", "scripts/run", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return root


def run(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *command], cwd=root, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHON": "false"})


def calls(root: Path) -> list[str]:
    log = root / ".venv" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_setup_installs_once_and_again_only_when_pyproject_changes(tmp_path):
    root = project(tmp_path)
    first = run(root, "scripts/setup")
    assert first.returncode == 0, first.stderr
    assert "scripts/setup: installing Switchboard's Python packages into .venv" in first.stderr
    assert calls(root) == ["-m pip install --quiet --disable-pip-version-check -e ."]

    again = run(root, "scripts/setup")
    assert again.returncode == 0, again.stderr
    assert "Python packages are up to date (pyproject.toml unchanged)" in again.stderr
    assert len(calls(root)) == 1  # pip did not run

    with (root / "pyproject.toml").open("a") as f:
        f.write("\n# a change\n")
    changed = run(root, "scripts/setup")
    assert "installing Switchboard's Python packages" in changed.stderr
    assert len(calls(root)) == 2


def test_run_says_what_it_does_and_starts_the_bot_without_reinstalling(tmp_path):
    root = project(tmp_path)
    assert run(root, "scripts/setup").returncode == 0
    started = run(root, "scripts/run", "--flag")
    assert started.returncode == 0, started.stderr
    assert started.stderr.splitlines() == [
        "scripts/setup: Python packages are up to date (pyproject.toml unchanged)",
        "scripts/run: starting the bot (.venv/bin/python app.py); Ctrl-C stops it",
    ]
    assert calls(root)[-1] == "app.py --flag"
    assert sum("pip install" in c for c in calls(root)) == 1


def test_the_readme_says_where_the_admin_tool_is():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`.venv/bin/switchboard-admin`" in readme
    tool = ROOT / ".venv" / "bin" / "switchboard-admin"
    result = subprocess.run([str(tool), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage: switchboard-admin" in result.stdout
