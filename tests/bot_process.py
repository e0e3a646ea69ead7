"""The bot as a real process (`python app.py`) on a free loopback port: for what only a
process shows (its memory, its exit, what it prints)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """This environment without the bot's settings, then `values`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("MICROSOFT", "SWITCHBOARD", "TO_BOT", "TO_CHANNEL"))
           and k not in ("HOST", "PORT")}
    env.update(values)
    return env


def start_bot(env: dict[str, str], port: int, timeout: float = 60,
              log_file: Path | None = None) -> subprocess.Popen:
    """Start app.py with `env` and wait until its /healthz answers 200 (stderr is piped, or
    written to `log_file`)."""
    stderr: Any = subprocess.PIPE
    if log_file is not None:
        stderr = log_file.open("w")
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env,
                               stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    if log_file is not None:
        stderr.close()  # the child has its own handle
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            said = (log_file.read_text() if log_file is not None
                    else process.communicate()[1])
            raise AssertionError(f"the bot exited: {said[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the bot did not start")
        time.sleep(0.1)
