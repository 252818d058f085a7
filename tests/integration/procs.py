"""Run real ``celeriac`` worker processes for tests, reading their logs as they come."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


class LoggedProcess:
    """A subprocess whose stderr (its log) is collected in ``output`` as it comes."""

    def __init__(self, command: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.output = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.output += line

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Block until ``text`` appears in the log; AssertionError (with the log) on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if text in self.output:
                    return
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                if text in self.output:
                    return
                raise AssertionError(f"worker exited ({self.proc.returncode}) before {text!r}:\n{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not seen within {timeout}s:\n{self.output}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 30.0) -> int:
        """Warm shutdown (SIGTERM); SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class WorkerProcess(LoggedProcess):
    """A ``celeriac -A taskapp worker`` subprocess on ``broker_url``."""

    def __init__(self, broker_url: str, args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "CELERIAC_BROKER_URL": broker_url, "PYTHONPATH": str(HERE), **(env or {})}
        full_env.pop("CELERIAC_RESULT_BACKEND", None)
        command = [sys.executable, "-m", "celeriac", "-A", "taskapp", "worker", "-l", "info", *args]
        super().__init__(command, HERE, full_env)
