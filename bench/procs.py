"""Processes the benchmarks start, and what /proc says about them (CPU time, peak RSS) and about the machine.

Every process is started in its own session, so a Ctrl-C at the terminal reaches only the benchmark script,
which then stops its processes itself: `Managed.stop` sends SIGTERM (a warm shutdown for both workers), waits,
and kills the process group if it did not exit. Used as a context manager, a `Managed` process is stopped
however the block ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Managed:
    """A child process we own: started on construction, its output in ``log_path``, stopped by `stop`.

    ``stop_signal`` is the polite stop (SIGTERM: a warm shutdown for both workers; SIGINT for py-spy, which
    writes its profile then).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        stdin: int | None = subprocess.DEVNULL,
        stdout_pipe: bool = False,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.argv = list(argv)
        self.stop_signal = stop_signal
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=stdin,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            start_new_session=True,
            text=stdout_pipe,
        )
        self.pid = self.proc.pid

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(timeout=30.0 if exc is None else 5.0)  # interrupted: do not wait long for a warm shutdown

    @property
    def stdin(self) -> IO[str]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process's output (for error messages)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """``stop_signal``, wait up to ``timeout`` s, then SIGKILL the whole process group; return the exit code.

        Idempotent. Children the process left behind in its group (a prefork pool) are killed too.
        """
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # our own session's group: leftovers only
        code = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
        return code


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a prefork worker's pool children), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes ``pids`` (from /proc/<pid>/stat), in seconds; gone processes count 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


def peak_rss(pids: Sequence[int]) -> int:
    """The sum of VmHWM (peak resident set) over ``pids``, in bytes."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants."""
    return cpu_seconds(descendants(pid))


def tree_peak_rss(pid: int) -> int:
    """Peak RSS bytes of ``pid`` plus its descendants (summed: an upper bound for a prefork pool)."""
    return peak_rss(descendants(pid))


def cpu_pressure() -> float | None:
    """The share of the last 10 s in which some runnable task waited for a CPU (PSI ``some avg10``), in %.

    None where the kernel has no pressure information. Other users' load on a shared machine shows here.
    """
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in first.split()[1:])
    return float(fields["avg10"])


def wait_for_quiet(threshold: float, max_wait: float) -> float | None:
    """Wait (at most ``max_wait`` s) until `cpu_pressure` is below ``threshold`` %; return the last reading."""
    deadline = time.monotonic() + max_wait
    pressure = cpu_pressure()
    while pressure is not None and pressure >= threshold and time.monotonic() < deadline:
        time.sleep(2.0)
        pressure = cpu_pressure()
    return pressure


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (user, nice, system, irq, softirq, steal; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user + times.system


def reaped_children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    times = os.times()
    return times.children_user + times.children_system


@dataclass(frozen=True)
class Usage:
    """CPU seconds used so far: by a worker's process tree, the broker, this process, and the whole machine."""

    wall: float
    worker: float
    broker: float
    own: float
    machine: float

    @classmethod
    def now(cls, worker_pid: int, broker_pid: int | None) -> Usage:
        broker = cpu_seconds([broker_pid]) if broker_pid else 0.0
        return cls(time.perf_counter(), tree_cpu(worker_pid), broker, own_cpu_seconds(), machine_busy_seconds())

    def __sub__(self, before: Usage) -> Usage:
        return Usage(
            self.wall - before.wall,
            self.worker - before.worker,
            self.broker - before.broker,
            self.own - before.own,
            self.machine - before.machine,
        )

    @property
    def others_cores(self) -> float:
        """Cores kept busy by everything else on the machine (other users' tests...) over the span."""
        return max(0.0, self.machine - self.worker - self.broker - self.own) / self.wall if self.wall else 0.0
