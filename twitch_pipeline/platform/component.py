"""The shape every local platform component shares: start, health, stop."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.platform.process import ManagedProcess, port_in_use
from twitch_pipeline.settings import Settings


class Component(ABC):
    """One piece of the local platform.

    ``start`` spawns and returns; ``up`` then polls ``health`` until ``healthy`` (bounded by
    ``TWITCH_PIPELINE_START_TIMEOUT_S``). ``health`` returns the component's ``status --json`` entry.
    """

    name: str
    #: (setting attribute, env var) of each port the component binds; checked before start.
    ports: tuple[str, ...] = ()
    #: Started by `up` only after the post-up hooks (migrations, topics): it reads what they create.
    after_hooks: bool = False

    def __init__(self, settings: Settings):
        self.settings = settings
        self.run_dir = settings.run_path

    @property
    def external(self) -> bool:
        """True when a URL setting points at a service someone else runs: `up` starts nothing, `status`
        checks that service, and nobody here restarts it."""
        return False

    @property
    def processes(self) -> list[ManagedProcess]:
        return []

    def running(self) -> bool:
        if self.external:
            return True  # not ours to run: health() says whether it is reachable
        procs = self.processes
        return bool(procs) and all(p.running() for p in procs)

    def check_ports(self) -> None:
        for attr in self.ports:
            port = getattr(self.settings, attr)
            if port_in_use(self.settings.host, port):
                var = "TWITCH_PIPELINE_" + attr.upper()
                raise PlatformError(
                    f"{self.name}: port {port} on {self.settings.host} is already in use by another program; "
                    f"stop that program or set {var} to a free port"
                )

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def health(self) -> dict[str, Any]: ...

    def wait_healthy(self) -> None:
        def ready() -> bool:
            for proc in self.processes:
                if (tail := proc.exited_early()) is not None:
                    raise PlatformError(f"{self.name} exited during start-up (log {proc.log_file}): {tail}")
            return bool(self.health().get("healthy"))

        try:
            wait_until(ready, self.settings.start_timeout_s, f"{self.name} becoming healthy", interval_s=0.5)
        except PlatformError as err:
            if "exited during" in str(err):
                raise
            logs = ", ".join(str(p.log_file) for p in self.processes) or "none"
            raise PlatformError(f"{err}; see logs: {logs}") from None

    def stop(self) -> list[str]:
        """Stop every process (newest first); returns the names that had to be killed."""
        return [p.name for p in reversed(self.processes) if p.stop(self.settings.stop_timeout_s)]

    def endpoint(self) -> str:
        """Where it listens, for the `up` summary."""
        return ", ".join(f"{k}={v}" for k, v in self.health().items() if k != "healthy")


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise PlatformError("Java 17+ was not found on PATH: run `make install` (installs openjdk-17 via apt) or put a JDK's bin/ on PATH")
    return java


def require_jars(directory: Path) -> list[Path]:
    jars = sorted(directory.glob("*.jar"))
    if not jars:
        raise PlatformError(f"no jars in {directory}: run `make jars` (Maven resolves them from jvm/pom.xml)")
    return jars


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PlatformError(f"{path} exists but is not a directory: remove it or point TWITCH_PIPELINE_RUN_DIR elsewhere") from None
    except PermissionError:
        raise PlatformError(f"cannot create {path} (permission denied): fix its permissions or set TWITCH_PIPELINE_RUN_DIR") from None
    return path
