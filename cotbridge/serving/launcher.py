"""Starts a study's planned vLLM servers, waits for their health, writes their URLs for `run`, and stops them.

Each server runs in its own process group (vLLM starts engine and worker processes of its own), with its output in
a log file beside the study. Stopping sends SIGTERM to the group, and SIGKILL to whatever of it outlives the grace
period. vLLM's `GET /health` answers 200 once the engine is ready
(https://docs.vllm.ai/en/stable/serving/openai_compatible_server/).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from cotbridge.errors import CotbridgeError
from cotbridge.serving.plan import ServePlan, ServerPlan
from cotbridge.serving.urls import already_serving, write_servers_file

LOG_TAIL_LINES = 25
STOP_GRACE_S = 30.0


class ServeError(CotbridgeError):
    """A server did not start or stopped serving; the message carries the end of its log."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _healthy(server: ServerPlan) -> bool:
    try:
        with urllib.request.urlopen(f"{server.root_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerFleet:
    """The running servers of one plan. Use as a context manager: leaving it stops every server it started."""

    def __init__(self, plan: ServePlan, *, grace_s: float = STOP_GRACE_S, poll_s: float = 0.5) -> None:
        self.plan = plan
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Starts every server (none is started twice)."""
        for server in self.plan.servers:
            if server.name in self.processes:
                continue
            server.log.parent.mkdir(parents=True, exist_ok=True)
            with server.log.open("wb") as log:  # this start's output only: the tail shown on failure is its own
                self.processes[server.name] = subprocess.Popen(
                    server.command,
                    env={**os.environ, **server.env},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as a whole, not hit by the terminal's ^C
                )

    def _exited(self, server: ServerPlan) -> ServeError | None:
        code = self.processes[server.name].poll()
        if code is None:
            return None
        return ServeError(
            f"the vLLM server of models.{server.name} exited with status {code}; the end of {server.log}:\n"
            f"{log_tail(server.log)}"
        )

    def wait_healthy(self) -> None:
        """Returns when every server answers GET /health; a server that exits or overruns its start timeout is a
        ServeError naming it, with the end of its log."""
        started = time.monotonic()
        waiting = list(self.plan.servers)
        while waiting:
            for server in list(waiting):
                if (failure := self._exited(server)) is not None:
                    raise failure
                if _healthy(server):
                    waiting.remove(server)
                elif time.monotonic() - started > server.start_timeout_s:
                    raise ServeError(
                        f"the vLLM server of models.{server.name} was not healthy within {server.start_timeout_s:g} s "
                        f"(start_timeout_s in its serve table); the end of {server.log}:\n{log_tail(server.log)}"
                    )
            if waiting:
                time.sleep(self.poll_s)

    def check_running(self) -> None:
        """A ServeError when a server has exited since it started."""
        for server in self.plan.servers:
            if (failure := self._exited(server)) is not None:
                raise failure

    def stop(self) -> None:
        """SIGTERM to every server's process group, then SIGKILL to what is left of it after the grace period."""
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for process in self.processes.values():
            while _group_alive(process.pid) and time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.1)
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        self.processes.clear()

    def __enter__(self) -> ServerFleet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def serving(plan: ServePlan, *, grace_s: float = STOP_GRACE_S) -> Iterator[ServerFleet]:
    """Starts the plan's servers, waits for their health and writes their URLs file; on leaving (finished, failed or
    interrupted) stops them and removes the file."""
    already_serving(plan)
    fleet = ServerFleet(plan, grace_s=grace_s)
    try:
        with fleet:
            fleet.start()
            fleet.wait_healthy()
            write_servers_file(plan, {name: process.pid for name, process in fleet.processes.items()})
            yield fleet
    finally:
        plan.urls_file.unlink(missing_ok=True)
