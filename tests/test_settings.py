"""Settings mistakes are found at start: one clear line each, naming the variable, what is
wrong and the fix, exit code 2, no traceback; and nothing is written to the store by a bot
that cannot serve (issue 12). The real `python app.py`."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.bot_process import ROOT, clean_env, free_port, start_bot


def _run(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "app.py")], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines()
            if line.startswith("switchboard:") and not line.startswith("switchboard: warning")]


@pytest.mark.parametrize("values, wanted", [
    ({"SWITCHBOARD_PORT": "abc"},
     ["SWITCHBOARD_PORT='abc': input should be a valid integer"]),
    ({"SWITCHBOARD_STORE": "sqlite"},
     ["SWITCHBOARD_STORE='sqlite': input should be 'embedded' or 'cosmos'"]),
    ({"SWITCHBOARD_STORE": "cosmos"},
     ["COSMOS_ENDPOINT is not set, and SWITCHBOARD_STORE=cosmos needs it"]),
    ({"SWITCHBOARD_PORT": "abc", "SWITCHBOARD_RETENTION_DAYS": "-3",
      "SWITCHBOARD_USE_EXECUTE": "maybe"},
     ["SWITCHBOARD_PORT='abc'", "SWITCHBOARD_RETENTION_DAYS='-3': input should be greater "
      "than 0", "SWITCHBOARD_USE_EXECUTE='maybe'"]),
    ({"MICROSOFT_APP_TYPE": "SingleTenant", "MICROSOFT_APP_ID": "x",
      "MICROSOFT_APP_PASSWORD": "y"},
     ["MICROSOFT_APP_TENANT_ID is not set, and MICROSOFT_APP_TYPE=SingleTenant needs it"]),
    ({"SWITCHBOARD_CONFIG": "/no/such/helpdesk.yaml"},
     ["SWITCHBOARD_CONFIG='/no/such/helpdesk.yaml': no such file"]),
    ({"COSMOS_AUTOSCALE_MAX": "1500"}, ["COSMOS_AUTOSCALE_MAX='1500': input should be a "
                                        "multiple of 1000"]),
])
def test_a_settings_mistake_is_one_line_each_and_exit_2(tmp_path, values, wanted):
    result = _run(clean_env(SWITCHBOARD_DB_PATH=str(tmp_path / "db.sqlite3"), **values))
    assert result.returncode == 2, result.stderr
    lines = _lines(result)
    assert len(lines) == len(wanted), result.stderr
    for line, start in zip(lines, wanted, strict=True):
        assert start in line, (line, start)
        assert "use " in line or "set " in line or "point " in line  # the fix
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # nothing was written


def test_a_misspelt_setting_is_named_with_a_guess(tmp_path):
    port = free_port()
    env = clean_env(SWITCHBOARD_PORT=str(port), SWITCHBOARD_DB_PATH=str(tmp_path / "db"),
                    SWITCHBOARD_STOR="cosmos")
    process = start_bot(env, port)
    try:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert ("SWITCHBOARD_STOR is not a setting (did you mean SWITCHBOARD_STORE?): it is "
            "ignored") in stderr


def test_a_busy_port_is_one_line_and_the_store_is_left_alone(tmp_path):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        db = tmp_path / "second.sqlite3"
        result = _run(clean_env(SWITCHBOARD_PORT=str(port), SWITCHBOARD_DB_PATH=str(db)))
    assert result.returncode == 2
    (line,) = _lines(result)
    assert f"SWITCHBOARD_PORT={port}: cannot listen on 127.0.0.1:{port}" in line
    assert "stop it or choose another port" in line and "Traceback" not in result.stderr
    assert not db.exists()  # it published nothing before failing


def test_an_unreachable_cosmos_endpoint_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there
    env = clean_env(SWITCHBOARD_PORT=str(free_port()), SWITCHBOARD_STORE="cosmos",
                    COSMOS_ENDPOINT=f"https://127.0.0.1:{dead}/", COSMOS_KEY="a2V5",
                    COSMOS_VERIFY_TLS="false")
    env["COSMOS_RETRY_SECONDS"] = "2"
    result = _run(env, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = _lines(result)
    assert len(lines) == 1 and f"COSMOS_ENDPOINT=https://127.0.0.1:{dead}/" in lines[0]
    assert "the store cannot be used" in lines[0]
    assert "Traceback" not in result.stderr
    assert '"listening"' not in result.stderr and "listening" not in result.stderr


