# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False
"""What a celeriac worker declares on RabbitMQ against what a real Celery 5.7 worker declares: each in a virtual
host of its own, then ``rabbitmqctl list_exchanges/list_queues/list_bindings`` compared (uuids normalised, the
node name the same on both sides), for the classic setup, quorum queues, and quorum queues on topic exchanges
(native delayed delivery). Both workers are pinged once by a Celery client, so the reply side is declared too."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]

from celeriac import App
from celeriac._amqp.errors import ChannelError
from celeriac.testing import start_worker
from celeriac.transports.amqp.transport import AMQPTransport

pytestmark = pytest.mark.amqp

NODE = "wire@wirehost"
ARGUMENT = re.compile(r"\{[^{}]*\}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CELERY_APP = """
import json, os
from celery import Celery
app = Celery("wireapp", broker=os.environ["WIRE_BROKER"])
app.conf.update(json.loads(os.environ["WIRE_SETTINGS"]), broker_connection_retry_on_startup=True)

@app.task(name="wire.noop")
def noop():
    return None
"""

SETUPS: dict[str, dict[str, Any]] = {
    "classic": {},
    "quorum": {"task_default_queue_type": "quorum"},
    "quorum-topic": {"task_default_queue_type": "quorum", "task_default_exchange_type": "topic"},
}


@pytest.fixture
def vhosts(ctl: Callable[..., str], run_id: str) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(kind: str) -> str:
        name = f"celeriac-wire-{run_id}-{kind}-{uuid.uuid4().hex[:6]}"
        ctl("add_vhost", name)
        ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        made.append(name)
        return name

    yield make
    for name in made:
        ctl("delete_vhost", name)


def url(vhost: str) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def normalise(line: str) -> str:
    """Uuids as ``UUID``; arguments in name order (RabbitMQ lists them as sent; the order means nothing)."""
    line = UUID.sub("UUID", line)
    head, tab, arguments = line.rpartition("\t")
    if tab and arguments.startswith("["):
        arguments = "[" + ",".join(sorted(ARGUMENT.findall(arguments))) + "]"
        return head + tab + arguments
    return line


async def snapshot(ctl: Callable[..., str], vhost: str) -> dict[str, list[str]]:
    """The vhost's entities as sorted, normalised lines (client reply queues left out: they come and go)."""

    def rows(*args: str) -> list[str]:
        out = ctl(*args[:1], "-q", "-p", vhost, *args[1:])
        lines = {normalise(line) for line in out.splitlines() if line.strip()}
        skip = ("name\t", "source_name\t", "amq.", "\t")  # header lines, the built-in and default exchanges
        return sorted(line for line in lines if ".reply.celery.pidbox" not in line and not line.startswith(skip))

    commands = {
        "exchanges": ("list_exchanges", "name", "type", "durable", "auto_delete", "arguments"),
        "queues": ("list_queues", "name", "durable", "auto_delete", "exclusive", "arguments"),
        "bindings": ("list_bindings", "source_name", "source_kind", "destination_name", "destination_kind",
                     "routing_key", "arguments"),
    }  # fmt: skip
    found = await asyncio.gather(*(asyncio.to_thread(rows, *command) for command in commands.values()))
    return dict(zip(commands, found, strict=True))


async def wait_for_queue(vhost: str, name: str, proc: subprocess.Popen[str] | None) -> None:
    """Wait until queue ``name`` exists (a passive declaration; an exclusive queue of another connection answers
    RESOURCE_LOCKED, which also means it is there)."""
    deadline = time.monotonic() + 60
    async with AMQPTransport(url(vhost)) as transport:
        while True:
            try:
                await transport.admin.run("looking", lambda ch: ch.queue_declare(name, passive=True))
                return
            except ChannelError as exc:
                if exc.reply_code == 405:
                    return
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"celery worker exited: {proc.stdout.read() if proc.stdout else ''}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} never appeared in {vhost}")
            await asyncio.sleep(0.1)


def celery_ping(vhost: str, settings: dict[str, Any]) -> list[Any]:
    app = Celery("pinger", broker=url(vhost))
    app.conf.update(settings)
    try:
        return list(app.control.ping(timeout=2.0))
    finally:
        app.close()


async def celery_side(
    ctl: Callable[..., str], vhost: str, settings: dict[str, Any], tmp_path: Path
) -> dict[str, list[str]]:
    (tmp_path / "wireapp.py").write_text(CELERY_APP)
    env = {**os.environ, "WIRE_BROKER": url(vhost), "WIRE_SETTINGS": __import__("json").dumps(settings),
           "PYTHONPATH": str(tmp_path)}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "wireapp", "worker", "-n", NODE, "-P", "solo", "-l", "warning"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await wait_for_queue(vhost, f"{NODE}.celery.pidbox", proc)
        replies = await asyncio.to_thread(celery_ping, vhost, settings)
        assert replies and NODE in replies[0], replies
        return await snapshot(ctl, vhost)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def celeriac_side(ctl: Callable[..., str], vhost: str, settings: dict[str, Any]) -> dict[str, list[str]]:
    app = App("wire", broker=url(vhost))
    app.conf.update(settings)
    if settings.get("task_default_queue_type") == "quorum":
        app.conf.task_queue_delivery_limit = 0  # Celery sets none; celeriac's own dead-lettering is checked apart
    async with start_worker(app, hostname=NODE, without_mingle=False, without_gossip=False, without_heartbeat=False):
        await wait_for_queue(vhost, f"{NODE}.celery.pidbox", None)
        replies = await asyncio.to_thread(celery_ping, vhost, settings)
        assert replies and NODE in replies[0], replies
        found = await snapshot(ctl, vhost)
    await app.aclose()
    return found


@pytest.mark.parametrize("setup", list(SETUPS))
async def test_celeriac_declares_what_celery_declares(
    setup: str, vhosts: Callable[[str], str], ctl: Callable[..., str], tmp_path: Path
) -> None:
    settings = SETUPS[setup]
    celery = await celery_side(ctl, vhosts("celery"), settings, tmp_path)
    ours = await celeriac_side(ctl, vhosts("celeriac"), settings)
    for kind in ("exchanges", "queues", "bindings"):
        assert ours[kind] == celery[kind], (kind, sorted(set(ours[kind]) ^ set(celery[kind])))
