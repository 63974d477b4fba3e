"""Background processes owned by the run directory.

Each local component runs as one process group whose pid lives in ``<run_dir>/pids/<name>.pid`` and
whose output goes to ``<run_dir>/logs/<name>.log``. Keeping the pid in the run directory (not /tmp)
is what makes a run directory a self-contained platform: ``down`` finds exactly what ``up`` started.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, below the kernel's ephemeral range.

    Port 0 would hand out an ephemeral port, the range outgoing connections take their local ports from: a
    component restarted on "its" port (the supervisor after a kill -9) then found it held by some client's
    connection (seen in a chaos run: Flink could not bind). Ports below the range are never taken that way.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 20_000), low)
        if port not in _handed_out and not port_in_use(host, port):
            _handed_out.add(port)  # two calls in a row must not return one port: nothing binds it in between
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@dataclass
class ManagedProcess:
    """A detached process group with a pid file and a log file in the run directory."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def state(self) -> str:
        """running; stopped (never started, or stopped cleanly); crashed (died without `stop`)."""
        if self.running():
            return "running"
        return "crashed" if self.pid_file.exists() else "stopped"

    def rss_mb(self) -> float | None:
        """Resident memory of the running process, in MiB (None when not running)."""
        pid = self.pid()
        try:
            with open(f"/proc/{pid}/status") as f:
                kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, TypeError):
            return None
        return round(kib / 1024, 1)

    def spawn(self, cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # own process group: stop() signals the JVM and its children
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def exited_early(self) -> str | None:
        """If the process died, the tail of its log (for the error message); else None."""
        if self.running():
            return None
        try:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            tail = []
        return " | ".join(line.strip() for line in tail) or "no output"

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM the group, wait, then SIGKILL. Returns True if it had to kill."""
        pid = self.pid()
        killed = False
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
                killed = True
                while _alive(pid):
                    time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return killed

    def kill(self) -> None:
        """kill -9 the group, as a crash would (for tests of recovery)."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead: reap it.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
