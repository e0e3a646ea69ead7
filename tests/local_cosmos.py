"""Start and stop the local Cosmos DB server (`@vercel/cosmosdb-server`) on loopback.

Used by the test fixtures and by the benchmarks: `scripts/cosmos_server.mjs` on a free
port, with a throwaway self-signed certificate, stopped when the `with` block ends.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.certs import self_signed

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "scripts" / "cosmos_server.mjs"
PACKAGE = ROOT / "node_modules" / "@vercel" / "cosmosdb-server"
# the well-known key of the Cosmos DB emulator; the local server accepts any key
EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
READY_PREFIX = "cosmosdb-server ready "
START_TIMEOUT = 20.0


class LocalCosmosError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class CosmosServer:
    endpoint: str
    key: str = EMULATOR_KEY
    # where the launcher appends one JSON line per request (method, path, partition-key
    # header), when it was asked to record
    record: Path | None = None

    def requests_since(self, offset: int) -> list[dict[str, object]]:
        """The requests recorded after `offset` (a size of the record file read earlier)."""
        import json

        if self.record is None or not self.record.exists():
            return []
        with self.record.open("rb") as f:
            f.seek(offset)
            return [json.loads(line) for line in f.read().decode().splitlines() if line]

    def record_size(self) -> int:
        return self.record.stat().st_size if self.record and self.record.exists() else 0


def _wait_ready(proc: subprocess.Popen[str], log: Path) -> str:
    """The endpoint from the launcher's ready line; fail with its log if it never comes."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if not readable:
            break
        line = proc.stdout.readline()
        if not line:  # the launcher exited
            break
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()
    proc.kill()
    proc.wait()
    raise LocalCosmosError(
        f"the local Cosmos DB server did not start within {START_TIMEOUT:.0f}s "
        f"(exit code {proc.returncode}):\n{log.read_text(errors='replace')[-4000:]}"
    )


@contextlib.contextmanager
def local_cosmos_server(
    workdir: Path | None = None, *, record: bool = False
) -> Iterator[CosmosServer]:
    if not (PACKAGE / "package.json").is_file():
        raise LocalCosmosError(
            f"the local Cosmos DB server is not installed ({PACKAGE} is missing): "
            f"run `npm ci` in {ROOT}"
        )
    node = shutil.which("node")
    if node is None:
        raise LocalCosmosError("node is not on PATH: the local Cosmos DB server needs Node.js 20")
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cert, key = self_signed(workdir)
        log = workdir / "server.log"
        recording = workdir / "requests.jsonl" if record else None
        env = {**os.environ, "NODE_NO_WARNINGS": "1"}
        if recording is not None:
            env["COSMOS_SERVER_RECORD"] = str(recording)
        with log.open("w") as stderr:
            # stdin stays open for as long as we live: the launcher exits when it closes, so
            # even a killed run leaves no server behind
            proc = subprocess.Popen(
                [node, str(LAUNCHER), "0", str(cert), str(key)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        try:
            yield CosmosServer(endpoint=_wait_ready(proc, log), record=recording)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
