"""Start, watch and stop the testbed's processes: one pid file and one log file per component."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Component:
    """A long-running process of the testbed and how to tell it is healthy."""

    name: str
    argv: Sequence[str]
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    health: Callable[[], bool] | None = None
    start_timeout: float = 60.0


class Supervisor:
    """Process bookkeeping in a state directory: `run/<name>.pid` and `logs/<name>.log`."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _recorded(self, name: str) -> tuple[int, str] | None:
        try:
            pid, started = self.pid_file(name).read_text().split()[:2]
            return int(pid), started
        except (FileNotFoundError, ValueError):
            return None

    def pid(self, name: str) -> int | None:
        """The pid of a component we started, if that process is still alive (a recycled pid is not ours)."""
        rec = self._recorded(name)
        if rec is None:
            return None
        pid, started = rec
        return pid if _alive(pid) and _start_time(pid) == started else None

    def names(self) -> list[str]:
        """Names of all components that have a pid file."""
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def start(self, comp: Component, base_env: dict[str, str]) -> int:
        """Start a component in its own session unless it already runs; wait until healthy."""
        if (pid := self.pid(comp.name)) is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**base_env, **comp.env}
        with open(self.log_file(comp.name), "ab") as out:
            proc = subprocess.Popen(
                list(comp.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.state_dir, start_new_session=True, preexec_fn=_unblock_signals,
            )
        self.pid_file(comp.name).write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        log.info("started %s pid=%d", comp.name, proc.pid)
        deadline = time.monotonic() + comp.start_timeout
        while comp.health is not None and not healthy(comp.health):
            if proc.poll() is not None:
                raise RuntimeError(f"{comp.name} exited with {proc.returncode}; see {self.log_file(comp.name)}\n"
                                   + self.tail(comp.name, 15))
            if time.monotonic() > deadline:
                raise RuntimeError(f"{comp.name} not healthy after {comp.start_timeout:.0f}s; "
                                   f"see {self.log_file(comp.name)}\n" + self.tail(comp.name, 15))
            time.sleep(0.3)
        return proc.pid

    def stop(self, name: str, timeout: float = 15.0) -> bool:
        """Stop a component and its whole process group; return True if something was stopped."""
        rec = self._recorded(name)
        leader = self.pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if rec is None or (leader is None and not _group_alive(rec[0])):
            return False
        pgid = rec[0]
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not _group_alive(pgid):
                    log.info("stopped %s pgid=%d", name, pgid)
                    return True
                time.sleep(0.1)
        return True

    def tail(self, name: str, lines: int = 50) -> str:
        """The last lines of a component's log."""
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _unblock_signals() -> None:
    # A process that created a gfal2 context blocks most signals, and children inherit the mask:
    # without this, a component started from such a process would ignore SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def healthy(check: Callable[[], bool]) -> bool:
    """Run a health probe; a probe that raises counts as unhealthy."""
    try:
        return bool(check())
    except Exception:  # a probe that raises: not healthy (yet)
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return "?"
