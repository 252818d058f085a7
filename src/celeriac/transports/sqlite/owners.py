"""Lease owner ids and telling, on this host, whether the process behind one is gone.

An owner id is ``<host>/<pid>/<start>:<pidns>/<tag>``: ``start`` is the process's start time in clock ticks since
boot (``/proc/<pid>/stat`` field 22), so a pid reused by another process is not taken for the owner; ``pidns``
is the pid namespace's inode (``/proc/self/ns/pid``), so containers that share a host name and the file but not
their pids never judge each other's leases (either is ``-`` where there is no /proc). Ids of older versions
(``<host>/<pid>/<tag>``) are judged by the pid alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, as text), or None if that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": field 3 (state) onwards
    return fields[19].decode() if len(fields) > 19 else None


def pid_namespace() -> str:
    """This process's pid namespace (the inode of ``/proc/self/ns/pid``), or ``-`` if that cannot be read."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def new_owner() -> str:
    """A fresh owner id for a consumer of this process."""
    pid = os.getpid()
    start = f"{process_start(pid) or '-'}:{pid_namespace()}"
    return f"{socket.gethostname()}/{pid}/{start}/{uuid.uuid4().hex[:12]}"


def is_gone(owner: str, host: str) -> bool:
    """Whether ``owner`` names a process of ``host`` (this host) that no longer runs. An id of another host, or
    one that cannot be parsed, is never judged gone (its lease expires as before)."""
    parts = owner.split("/")
    if len(parts) not in (3, 4) or parts[0] != host or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    recorded, _, namespace = (parts[2] if len(parts) == 4 else "-").partition(":")
    if pid <= 0 or (namespace and namespace != pid_namespace()):
        return False  # another pid namespace's pid: not one this process can look up
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return False
    if recorded == "-":
        return False
    current = process_start(pid)
    return current is not None and current != recorded  # the pid was reused by a younger process


def gone_owners(owners: Iterable[str], host: str) -> list[str]:
    """The owners among ``owners`` whose process on ``host`` is gone."""
    return [owner for owner in owners if isinstance(owner, str) and is_gone(owner, host)]
