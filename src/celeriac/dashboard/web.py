"""The Starlette application: pages, actions (role- and CSRF-checked, audited), ``/stream``, ``/metrics``.

`Dashboard` owns the store, the access policy and, while the server runs, a broker connection that feeds the
store from the event exchange and answers queue sizes and control commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from celeriac.app.app import App
from celeriac.control.pidbox import Mailbox
from celeriac.dashboard import actions, queues
from celeriac.dashboard.beatview import beat_entries
from celeriac.dashboard.forms import span, task_filter, tree_nodes, when
from celeriac.dashboard.inspected import Inspected
from celeriac.dashboard.metrics import Metrics
from celeriac.dashboard.security import Access, role_at_least
from celeriac.dashboard.store import SORTABLE, STATES, EventStore
from celeriac.dashboard.templates import environment
from celeriac.events.model import Event
from celeriac.events.receiver import EventReceiver
from celeriac.transports.base import Transport

log = logging.getLogger("celeriac.dashboard")

PAGE = 50


class Dashboard:
    """One dashboard: ``asgi`` is the Starlette app to serve.

    Args:
        app: the celeriac app (broker URL, serializers, control signing key).
        store: the history.
        access: who may do what.
        listen: receive events from the broker while serving (off in tests that feed the store directly).
        offline_after: seconds without a heartbeat before a worker is lost (then offline after 10x, purged
            after ``purge_after``).
    """

    def __init__(
        self,
        app: App,
        store: EventStore,
        access: Access | None = None,
        listen: bool = True,
        offline_after: float = 10.0,
        purge_after: float = 86400.0,
    ) -> None:
        self.app = app
        self.store = store
        self.access = access or Access()
        self.listen = listen
        self.offline_after = offline_after
        self.purge_after = purge_after
        self.metrics = Metrics()
        self.inspected = Inspected(app)
        self.templates = environment()
        self.transport: Transport | None = None
        self.asgi = Starlette(routes=self.routes(), lifespan=self.lifespan)

    # -- broker side ----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        """Connect to the broker and ingest events while the server runs."""
        if not self.listen:
            yield
            return
        self.transport = self.app.make_transport()
        await self.transport.connect()
        task = asyncio.create_task(self.ingest_forever(self.transport))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.transport.close()
            self.transport = None

    async def ingest_forever(self, transport: Transport) -> None:
        """Receive events in batches (up to 500 or 0.2 s) and store them off the event loop."""
        accept = list(self.app.conf.accept_content)
        async with EventReceiver(transport, accept=accept) as receiver:
            with contextlib.suppress(Exception):  # no worker yet is fine: heartbeats come anyway
                await Mailbox(transport, signing_key=self.app.conf.control_signing_key).call("heartbeat")
            events = aiter(receiver)
            while True:
                batch: list[Event] = [await anext(events)]
                deadline = time.monotonic() + 0.2
                while len(batch) < 500 and (left := deadline - time.monotonic()) > 0:
                    try:
                        batch.append(await asyncio.wait_for(anext(events), left))
                    except TimeoutError:
                        break
                seen = await asyncio.to_thread(self.store.ingest, batch)
                self.metrics.observe(seen)
                await asyncio.to_thread(self.store.purge_workers, time.time() - self.purge_after)

    def queue_names(self) -> list[str]:
        """Queues to show: the default queue and every queue a task was seen on."""
        return sorted({str(self.app.conf.task_default_queue), *self.store.names("queue")})

    async def queue_sizes(self) -> list[dict[str, Any]]:
        """Depth and dead-letter count (``<queue>.dead``) of every known queue."""
        rows: list[dict[str, Any]] = []
        transport = self.transport
        for name in self.queue_names():
            if name.endswith(".dead"):
                continue
            depth: int | str = "?"
            dead: int | str = "?"
            oldest: float | None = None
            if transport is not None:
                try:
                    depth = await transport.size(name)
                    dead = await transport.size(f"{name}.dead")
                    if depth:
                        _, oldest = await queues.peek(transport, name, 1, self.sent_at, self.store.unreceived)
                except Exception as exc:  # a broker error is shown, not raised: the page still renders
                    log.warning("queue size of %s: %s", name, exc)
            consumers = ", ".join(self.inspected.consumers(name))
            rows.append({"name": name, "depth": depth, "dead": dead, "oldest": oldest, "consumers": consumers})
        return rows

    def sent_at(self, task_id: str) -> float | None:
        """When the history saw ``task_id`` sent (or received), for a waiting message's age."""
        task = self.store.task(task_id)
        return (task["sent"] or task["received"]) if task else None

    def worker_rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """Workers with their status: online, lost (missed heartbeats) or offline (said so, or long silent)."""
        now = time.time() if now is None else now
        rows = []
        for w in self.store.workers():
            silent = now - (w["last_heartbeat"] or 0)
            limit = max(self.offline_after, 2 * (w["freq"] or 0))
            status = "offline" if w["offline"] or silent > 10 * limit else "lost" if silent > limit else "online"
            load = json.loads(w["loadavg"]) if w["loadavg"] else []
            rows.append(
                {
                    **w,
                    **self.inspected.worker(w["hostname"]),
                    "status": status,
                    "load": " ".join(f"{v:.2f}" for v in load),
                    "age": f"{silent:.0f}s",
                }
            )
        return rows

    # -- HTTP -----------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every URL."""
        page = self.page
        act = self.action
        return [
            Route("/", page(self.workers_page)),
            Route("/workers/{hostname}", page(self.worker_page)),
            Route("/tasks", page(self.tasks_page)),
            Route("/tasks/{uuid}", page(self.task_page)),
            Route("/canvas/{root}", page(self.canvas_page)),
            Route("/queues", page(self.queues_page)),
            Route("/queues/{queue}", page(self.peek_page)),
            Route("/beat", page(self.beat_page)),
            Route("/control", page(self.control_page)),
            Route("/audit", page(self.audit_page)),
            Route("/tasks/bulk-retry", act(actions.bulk_retry, "operator"), methods=["POST"]),
            Route("/tasks/{uuid}/retry", act(actions.retry, "operator"), methods=["POST"]),
            Route("/tasks/{uuid}/revoke", act(actions.revoke, "operator"), methods=["POST"]),
            Route("/tasks/{uuid}/discard", act(actions.discard, "operator"), methods=["POST"]),
            Route("/queues/{queue}/purge", act(actions.purge, "admin"), methods=["POST"]),
            Route("/control/{command}", act(actions.control, "operator"), methods=["POST"]),
            Route("/stream", page(self.stream)),
            Route("/metrics", self.metrics_endpoint),
            Route("/healthz", self.healthz),
        ]

    def who(self, request: Request) -> tuple[str, str] | None:
        """(user, role) of a request."""
        return self.access.identify({k.lower(): v for k, v in request.headers.items()})

    @staticmethod
    def challenge() -> Response:
        return PlainTextResponse(
            "authentication required", status_code=401, headers={"WWW-Authenticate": 'Basic realm="celeriac"'}
        )

    def page(self, handler: Callable[[Request, str, str], Awaitable[Response]]) -> Callable[..., Any]:
        """A GET view behind authentication."""

        async def endpoint(request: Request) -> Response:
            who = self.who(request)
            if who is None:
                return self.challenge()
            return await handler(request, *who)

        return endpoint

    def action(self, handler: Callable[[Any, Request, str, Mapping[str, str]], Awaitable[str]], role: str) -> Any:
        """A POST action: authenticated, role checked, CSRF checked, audited; redirects back with a message."""

        async def endpoint(request: Request) -> Response:
            who = self.who(request)
            if who is None:
                return self.challenge()
            user, have = who
            form = {k: str(v) for k, v in (await request.form()).items()}
            if not self.access.csrf_ok(user, form.get("csrf", "")):
                return PlainTextResponse("missing or wrong CSRF token", status_code=403)
            if not role_at_least(have, role):
                return PlainTextResponse(f"role {have} may not do this (needs {role})", status_code=403)
            try:
                message = await handler(self, request, user, form)
            except ValueError as exc:
                message = f"refused: {exc}"
            back = form.get("next") or request.headers.get("referer") or "/"
            separator = "&" if "?" in back else "?"
            return RedirectResponse(f"{back}{separator}{urlencode({'flash': message})}", status_code=303)

        return endpoint

    def render(self, request: Request, user: str, role: str, name: str, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            user=user,
            role=role,
            csrf=self.access.csrf_token(user),
            can_operate=role_at_least(role, "operator"),
            can_admin=role_at_least(role, "admin"),
            flash=request.query_params.get("flash"),
            when=when,
            **context,
        )
        return HTMLResponse(html)

    async def workers_page(self, request: Request, user: str, role: str) -> Response:
        if self.transport is not None:
            await self.inspected.refresh()
        return self.render(request, user, role, "workers", title="Workers", workers=self.worker_rows())

    async def worker_page(self, request: Request, user: str, role: str) -> Response:
        hostname = request.path_params["hostname"]
        sections = []
        for command in ("stats", "conf", "active_queues", "active", "reserved", "scheduled"):
            try:
                replies = await self.app.control.abroadcast(command, destination=[hostname], reply=True, timeout=1.0)
                text = json.dumps(replies, indent=2, default=str, sort_keys=True)
            except Exception as exc:  # an unreachable worker is shown as such
                text = f"no answer: {exc}"
            sections.append((command, text))
        return self.render(request, user, role, "worker", title=hostname, hostname=hostname, sections=sections)

    async def tasks_page(self, request: Request, user: str, role: str) -> Response:
        params = dict(request.query_params)
        try:
            where = task_filter(params)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        sort = params.get("sort", "updated")
        if sort not in SORTABLE:
            return PlainTextResponse(f"cannot sort by {sort!r}: one of {', '.join(SORTABLE)}", status_code=400)
        descending = params.get("order", "desc") != "asc"
        page = max(1, int(params["page"]) if params.get("page", "").isdigit() else 1)
        tasks, total = self.store.tasks(where, sort, descending, (page - 1) * PAGE, PAGE)
        query = [(k, v) for k, v in params.items() if k not in ("page", "flash", "sort", "order") and v]

        def sort_link(column: str) -> str:
            order = "asc" if column == sort and descending else "desc"
            return urlencode([*query, ("sort", column), ("order", order)])

        def page_link(number: int) -> str:
            return urlencode([*query, ("sort", sort), ("order", "desc" if descending else "asc"), ("page", number)])

        return self.render(
            request,
            user,
            role,
            "tasks",
            title="Tasks",
            tasks=tasks,
            total=total,
            page=page,
            pages=max(1, math.ceil(total / PAGE)),
            f=where,
            states=sorted(set(STATES.values())),
            query=query,
            sort_link=sort_link,
            page_link=page_link,
        )

    async def task_page(self, request: Request, user: str, role: str) -> Response:
        task = self.store.task(request.path_params["uuid"])
        if task is None:
            return PlainTextResponse("no such task in the history", status_code=404)
        return self.render(
            request,
            user,
            role,
            "task",
            title=task["name"] or task["uuid"],
            t=task,
            timeline=self.store.timeline(task["uuid"]),
            related=self.store.related(task["uuid"]),
            wait=span(task["sent"] or task["received"], task["started"]),
            run=f"{task['runtime']:.3f}s" if task["runtime"] is not None else span(task["started"], task["finished"]),
        )

    async def canvas_page(self, request: Request, user: str, role: str) -> Response:
        root = request.path_params["root"]
        nodes = tree_nodes(self.store.tree(root), root)
        return self.render(request, user, role, "canvas", title="Canvas", root=root, nodes=nodes)

    async def queues_page(self, request: Request, user: str, role: str) -> Response:
        if self.transport is not None:
            await self.inspected.refresh()
        return self.render(request, user, role, "queues", title="Queues", queues=await self.queue_sizes())

    async def peek_page(self, request: Request, user: str, role: str) -> Response:
        """The next messages of one queue, read without consuming them."""
        queue = request.path_params["queue"]
        if self.transport is None:
            return PlainTextResponse("not connected to the broker", status_code=503)
        try:
            messages, oldest = await queues.peek(self.transport, queue, 20, self.sent_at, self.store.unreceived)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return self.render(request, user, role, "peek", title=queue, queue=queue, messages=messages, oldest=oldest)

    async def beat_page(self, request: Request, user: str, role: str) -> Response:
        """Beat's entries (next and last slot, read from the result backend's records) and the leader."""
        seen = self.store.beat()
        entries, problem = await beat_entries(self.app, seen)
        return self.render(
            request, user, role, "beat", title="Beat", entries=entries, leader=seen.get("leader"), problem=problem
        )

    async def control_page(self, request: Request, user: str, role: str) -> Response:
        commands = [(name, fields) for name, (fields, need) in actions.COMMANDS.items() if role_at_least(role, need)]
        replies = request.query_params.get("replies")
        return self.render(request, user, role, "control", title="Control", commands=commands, replies=replies)

    async def audit_page(self, request: Request, user: str, role: str) -> Response:
        return self.render(request, user, role, "audit", title="Audit", entries=self.store.audit_log())

    async def stream(self, request: Request, user: str, role: str) -> Response:
        """Server-sent events: one ``data:`` line whenever the store changed (polled twice a second)."""
        most = int(request.query_params.get("max", "0") or 0)  # tests stop after a few

        async def changes() -> AsyncIterator[str]:
            seen = self.store.version
            sent = 0
            yield ": connected\n\n"
            while not most or sent < most:
                if await request.is_disconnected():
                    return
                if self.store.version != seen:
                    seen = self.store.version
                    sent += 1
                    yield f"data: {seen}\n\n"
                else:
                    await asyncio.sleep(0.5)

        return StreamingResponse(changes(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def metrics_endpoint(self, request: Request) -> Response:
        if self.who(request) is None:
            return self.challenge()
        rows = await self.queue_sizes()
        depths = {q["name"]: q["depth"] for q in rows if isinstance(q["depth"], int)}
        dead = {q["name"]: q["dead"] for q in rows if isinstance(q["dead"], int)}
        online = sum(1 for w in self.worker_rows() if w["status"] == "online")
        oldest = {q["name"]: q["oldest"] for q in rows if q["oldest"] is not None}
        body = self.metrics.render(depths, oldest, dead, online)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(self, request: Request) -> Response:
        self.store.workers()  # the store answers
        return PlainTextResponse("ok")
