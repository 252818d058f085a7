"""Running the worker as a daemon (``worker -D``) and Celery's node-name placeholders in file names.

``--pidfile``/``--logfile`` take Celery's placeholders: ``%p`` the full node name (``w1@host.example``), ``%n`` its
name part (``w1``), ``%h`` its host part, ``%d`` the host's domain, ``%i`` the pool process index (0: the main
process, the only one that writes these files here), ``%I`` that index with a separator (empty here), ``%%`` a %.
"""

from __future__ import annotations

import os

from celeriac.errors import ConfigurationError

DEFAULT_DETACHED_PIDFILE = "%n.pid"
"""Celery's default pidfile of a detached worker."""


def expand_path(template: str, nodename: str) -> str:
    """``template`` with the node-name placeholders filled in for ``nodename``."""
    name, _, host = nodename.partition("@")
    _, _, domain = host.partition(".")
    values = {"p": nodename, "n": name, "h": host, "d": domain, "i": "0", "I": ""}
    out: list[str] = []
    chars = iter(template)
    for char in chars:
        if char != "%":
            out.append(char)
            continue
        key = next(chars, "")
        if key == "%":
            out.append("%")
        elif key in values:
            out.append(values[key])
        else:
            raise ConfigurationError(f"unknown placeholder %{key} in {template!r} (known: %p %n %h %d %i %I %%)")
    return "".join(out)


def detach() -> None:
    """Become a daemon: leave the terminal's session (two forks, ``setsid``) and point stdin, stdout and stderr at
    /dev/null. Call it before any thread or event loop starts: only the calling thread survives a fork. The
    original process exits 0 once the daemon is forked."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
