"""The bot as a separate process, as a host starts it: started, waited for until /healthz
answers 200 (bounded), and stopped with SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AppProcess:
    process: subprocess.Popen[str]
    port: int
    health: bytes = b""
    stderr: str = ""


@contextmanager
def running_app(args: list[str], *, cwd: Path, env: dict[str, str], port: int,
                timeout: float = 60) -> Iterator[AppProcess]:
    """`args` runs the bot listening on 127.0.0.1:`port` (the caller's env says so)."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    app = AppProcess(process, port)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    app.health = r.read()
                    break
            except OSError:
                assert time.monotonic() < deadline, "the bot never answered /healthz"
                time.sleep(0.1)
        yield app
    finally:
        process.terminate()
        _, app.stderr = process.communicate(timeout=30)
