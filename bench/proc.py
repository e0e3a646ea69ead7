"""Child processes for the load benchmark, and what Linux says about them (/proc).

Every child is started here, bound to 127.0.0.1 by its arguments, in a new session of
its own, and remembered; `Children.stop_all` ends each of them by its own pid (TERM, then
KILL), and runs from `finally` and `atexit` so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU of a process, all its threads included (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # the command name may hold spaces: the fields start after its closing parenthesis
    fields = raw[raw.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / TICKS


def loop_thread_cpu(pid: int) -> float:
    """CPU of a process's main thread alone (/proc/<pid>/task/<pid>/stat): for an asyncio
    server, its event loop; the rest of `cpu_seconds` is its other threads (a store's)."""
    return cpu_seconds(f"{pid}/task/{pid}")


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and RssAnon/File/Shmem in KiB (/proc/<pid>/status)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


@dataclass(frozen=True)
class MachineCpu:
    """Jiffies from /proc/stat: busy and total, for the whole machine and per core."""

    busy: dict[str, int]
    total: dict[str, int]

    @classmethod
    def read(cls) -> MachineCpu:
        busy: dict[str, int] = {}
        total: dict[str, int] = {}
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                name, *vals = line.split()
                nums = [int(v) for v in vals[:8]]  # user nice system idle iowait irq softirq steal
                total[name] = sum(nums)
                busy[name] = total[name] - nums[3] - nums[4]
        return cls(busy, total)

    def busy_since(self, before: MachineCpu, name: str) -> float:
        """Fraction of `name` ("cpu" = all cores, "cpu0"...) that was busy between the two."""
        total = self.total.get(name, 0) - before.total.get(name, 0)
        if total <= 0:
            return 0.0
        return (self.busy[name] - before.busy[name]) / total

    def busy_seconds_since(self, before: MachineCpu) -> float:
        return (self.busy["cpu"] - before.busy["cpu"]) / TICKS


def pin(pid: int, cores: set[int] | None) -> None:
    if cores:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)


class Children:
    """The subprocesses this benchmark started. Only these are ever signalled."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        atexit.register(self.stop_all)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None, log_dir: Path, cores: set[int] | None = None,
              ) -> subprocess.Popen:
        log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the child)
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        proc.log_path = log_dir / f"{name}.log"  # type: ignore[attr-defined]
        proc.log_file = log  # type: ignore[attr-defined]
        pin(proc.pid, cores)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            except ProcessLookupError:
                pass
        log = getattr(proc, "log_file", None)
        if log is not None and not log.closed:
            log.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            try:
                self.stop(proc)
            except Exception:  # keep going: every child must be ended
                with contextlib.suppress(Exception):
                    proc.kill()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Until 127.0.0.1:port accepts a connection; raise if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args!r} exited with {proc.returncode} before listening:\n"
                + tail(proc.log_path)  # type: ignore[attr-defined]
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")
