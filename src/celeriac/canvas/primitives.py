"""chain, group, chord: signatures of signatures, as Celery writes them (``subtask_type`` and ``kwargs``).

How they go on the wire (celery-wire.md §1.3): a chain sends its first task with the rest, frozen (task ids
fixed), in the embed's ``chain`` in reverse order; a group sends each task with the ``group`` id and its
``group_index``; a chord records its size in the result backend, then sends each header task with
``group``/``group_index`` and the body (``chord_size`` set) in the embed's ``chord``. The worker does the
rest (`celeriac.worker.canvas`). A group followed by anything in a chain becomes a chord, and a chord followed
by anything takes it into its body, as in Celery.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from celeriac.canvas.errors import CanvasError
from celeriac.canvas.host import CanvasHost
from celeriac.canvas.results import GroupResult
from celeriac.canvas.signature import Signature, maybe_signature

#: Options a group or chord passes on to each task it sends (everything but its own identity and links).
_OWN = ("task_id", "group_id", "group_index", "link", "link_error", "chain", "chord")


def _tasks(tasks: tuple[Any, ...], app: CanvasHost | None) -> list[Signature]:
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping) and isinstance(tasks[0], Iterable):
        tasks = tuple(tasks[0])
    out = []
    for t in tasks:
        sig = maybe_signature(t, app=app)
        if sig is None:
            raise TypeError("a canvas cannot hold None")
        out.append(sig.clone())  # a copy: one signature object used twice must not share a frozen id
    return out


def _passed_on(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _OWN}


class chain(Signature):
    """Tasks run one after the other, each given the previous one's result (unless immutable)."""

    def __init__(self, *tasks: Any, app: CanvasHost | None = None, **options: Any) -> None:
        steps = _tasks(tasks, app)
        super().__init__("celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        made = cls(d["kwargs"]["tasks"], app=app, **(d.get("options") or {}))
        made["args"], made["immutable"] = list(d.get("args") or ()), bool(d.get("immutable"))
        return made

    @property
    def tasks(self) -> list[Signature]:
        """The steps."""
        return _tasks((self["kwargs"]["tasks"],), self._app)

    def __or__(self, other: Any) -> chain:  # type: ignore[override]  # composition, not dict union
        if not isinstance(other, Signature):
            return NotImplemented
        return chain(*self.tasks, other, app=self._app, **self.options)

    def steps(self) -> list[Signature]:
        """The steps to send, copied: nested chains flattened, a group followed by anything turned into a
        chord, a chord followed by anything given it in its body (so only the last step is a group/chord)."""
        out: list[Signature] = []
        for step in _flatten(self.tasks):
            last = out[-1] if out else None
            if isinstance(last, group):
                out[-1] = chord(last, step, app=self._app)
            elif isinstance(last, chord):
                body = last.body
                out[-1] = chord(last.header, step if body is None else body | step, app=self._app, **last.options)
            else:
                out.append(step.clone())
        if not out:
            raise CanvasError("a chain needs at least one task")
        return out

    def freeze(self, _id: str | None = None, **opts: Any) -> Any:
        """Fix every step's id (the last one's is ``_id`` when given); the last step's result."""
        self.options.update(opts)
        steps = self.steps()
        results = self._frozen(steps, _id)
        self["kwargs"]["tasks"] = steps  # sent later with these ids
        return results[-1]

    def _frozen(self, steps: list[Signature], _id: str | None) -> list[Any]:
        results: list[Any] = []
        for n, step in enumerate(steps):
            result = step.freeze(_id if n == len(steps) - 1 else None)
            if results:
                result.parent = results[-1]
            results.append(result)
        return results

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Send the first step with the frozen rest in its ``chain`` embed; the last step's result."""
        if self.app.always_eager:
            return await self.aapply(args, kwargs, **opts)
        options = {**self.options, **opts}
        steps = self.steps()
        rest = options.pop("chain", None)  # a chain sent as the link of another: its remaining steps follow
        if rest:
            steps = chain(*steps, *(Signature.from_dict(d, app=self._app) for d in reversed(rest))).steps()
        for errback in _as_list(options.pop("link_error", None)):
            for step in steps:
                step.link_error(errback)
        for callback in _as_list(options.pop("link", None)):
            steps[-1].link(callback)
        results = self._frozen(steps, options.pop("task_id", None))
        first, later = steps[0], steps[1:]
        if later:
            options["chain"] = [dict(step) for step in reversed(later)]
        if isinstance(first, group | chord) and later:
            raise CanvasError("internal: a group or chord inside a chain must be its last step")
        await first.aapply_async(args, kwargs, **options)
        return results[-1]


def _flatten(steps: list[Signature]) -> list[Signature]:
    out: list[Signature] = []
    for step in steps:
        out.extend(_flatten(step.tasks) if isinstance(step, chain) else [step])
    return out


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]


class group(Signature):
    """Tasks run in parallel; the result is a `GroupResult` of theirs, in order."""

    def __init__(self, *tasks: Any, app: CanvasHost | None = None, **options: Any) -> None:
        members = _tasks(tasks, app)
        super().__init__("celery.group", (), {"tasks": members}, options, subtask_type="group", app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        made = cls(d["kwargs"]["tasks"], app=app, **(d.get("options") or {}))
        made["args"], made["immutable"] = list(d.get("args") or ()), bool(d.get("immutable"))
        return made

    @property
    def tasks(self) -> list[Signature]:
        """The members."""
        return _tasks((self["kwargs"]["tasks"],), self._app)

    def __len__(self) -> int:
        return len(self["kwargs"]["tasks"])

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, Signature):
            return NotImplemented
        return chord(self, other, app=self._app)

    def link(self, callback: Mapping[str, Any]) -> Any:
        """Refused: a callback of the whole group is a chord body (Celery's group.link is misleading)."""
        raise CanvasError("to run a task after a whole group, use chord(group, callback) or group | callback")

    def freeze(self, _id: str | None = None, **opts: Any) -> GroupResult:
        """Fix the group id and each member's id; the `GroupResult`."""
        self.options.update(opts)
        gid = _id or self.options.get("task_id") or str(uuid.uuid4())
        self.options["task_id"] = gid
        members = self.tasks
        results = [m.freeze(group_id=gid, group_index=i) for i, m in enumerate(members)]
        self["kwargs"]["tasks"] = members
        return GroupResult(gid, results, app=self.app)

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> GroupResult:
        """Send every member with the group id and its index; the `GroupResult`."""
        if self.app.always_eager:
            eager: GroupResult = await self.aapply(args, kwargs, **opts)
            return eager
        options = {**self.options, **opts}
        if options.get("chord") is not None or options.get("chain"):
            raise CanvasError("a group cannot carry a chord or chain embed: use chord(group, body)")
        copy = group([m.clone(args, kwargs) for m in self.tasks], app=self._app)
        for errback in _as_list(options.get("link_error")):
            for member in copy.tasks:
                member.link_error(errback)
        result = copy.freeze(options.get("task_id") or options.get("group_id"))
        common = _passed_on(options)
        for member in copy.tasks:
            await member.aapply_async(None, None, **common)
        return result


class chord(Signature):
    """A header group whose results, once all are in, are the first argument of the body."""

    def __init__(
        self, header: Any, body: Any = None, app: CanvasHost | None = None, kwargs: Any = None, **options: Any
    ) -> None:
        members = header.clone() if isinstance(header, group) else group(_tasks((header,), app), app=app)
        body_sig = maybe_signature(body, app=app)
        body_sig = body_sig.clone() if body_sig is not None else None
        fields = {"kwargs": dict((kwargs or {}).get("kwargs") or {}), "header": members, "body": body_sig}
        super().__init__("celery.chord", (), fields, options, subtask_type="chord", app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        kw = d["kwargs"]
        header = Signature.from_dict(kw["header"], app=app) if isinstance(kw["header"], Mapping) else kw["header"]
        made = cls(header, kw.get("body"), app=app, kwargs=kw, **(d.get("options") or {}))
        made["args"], made["immutable"] = list(d.get("args") or ()), bool(d.get("immutable"))
        return made

    @property
    def header(self) -> group:
        """The header group."""
        value = self["kwargs"]["header"]
        if isinstance(value, group):
            return value
        if isinstance(value, Mapping):  # a group's dict
            made = Signature.from_dict(value, app=self._app)
            if isinstance(made, group):
                return made
            value = [made]
        return group(value, app=self._app)  # Celery writes a chord's header as a plain list of signatures

    @property
    def body(self) -> Signature | None:
        """The body (run with the list of header results)."""
        return maybe_signature(self["kwargs"].get("body"), app=self._app)

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, Signature):
            return NotImplemented
        body = self.body
        return chord(self.header, other if body is None else body | other, app=self._app, **self.options)

    def link(self, callback: Mapping[str, Any]) -> Any:
        """Link ``callback`` to the body."""
        self._body_for_links().link(callback)
        return callback

    def link_error(self, errback: Mapping[str, Any]) -> Any:
        """Link ``errback`` to the body: it runs once when the chord fails (a header failed, or the body did)."""
        self._body_for_links().link_error(errback)
        return errback

    def _body_for_links(self) -> Signature:
        body = self.body
        if body is None:
            raise CanvasError("this chord has no body yet")
        self["kwargs"]["body"] = body
        return body

    def freeze(self, _id: str | None = None, **opts: Any) -> Any:
        """Fix the body's id (``_id`` when given) and the header's; the body's result, header as its parent.

        As in Celery, the chord's own ``task_id`` option is then its header's group id.
        """
        self.options.update(opts)
        body, header = self._body_for_links(), self.header
        result = body.freeze(_id)
        result.parent = header.freeze(self.options.get("task_id") or header.options.get("task_id"))
        self.options["task_id"] = result.parent.id
        self["kwargs"]["header"] = header
        return result

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Record the chord's size, send the header tasks; the body's result (its parent: the header's).

        ``task_id`` given here is the body's id; the chord's own ``task_id`` option is the group id (Celery's).
        """
        if self.app.always_eager:
            return await self.aapply(args, kwargs, **opts)
        body_id = opts.pop("task_id", None)
        options = {**self.options, **opts}
        body = self.linked_body(options)
        if options.get("chain"):
            if body.subtask_type is not None:
                raise CanvasError("a chord inside a chain needs a plain task as its body")
            body.options["chain"] = options["chain"]
        result = body.freeze(body_id)
        members = [m.clone(args, kwargs) for m in self.header.tasks]
        for member in members:
            if member.subtask_type is not None:
                raise CanvasError(f"a chord header holds plain task signatures, not a {member.subtask_type}")
        body.chord_size = len(members)
        common = _passed_on(options)
        if not members:  # nothing to wait for: the body runs at once with no results (as in Celery)
            await body.aapply_async(([],), None, **common)
            return result
        gid = self.options.get("task_id") or self.header.options.get("task_id") or str(uuid.uuid4())
        backend = await self.app.abackend()
        await backend.chord_start(gid, len(members))
        results = []
        for i, member in enumerate(members):
            results.append(member.freeze(group_id=gid, group_index=i))
            await member.aapply_async(None, None, chord=dict(body), **common)
        result.parent = GroupResult(gid, results, app=self.app)
        return result

    def linked_body(self, options: Mapping[str, Any]) -> Signature:
        """A copy of the body with the chord's ``link``/``link_error`` from ``options`` on it (they run once, for
        the whole chord); `CanvasError` when there is no body."""
        body = self.body
        if body is None:
            raise CanvasError("a chord needs a body: chord(header, body) or chord(header)(body)")
        body = cast(Signature, body.clone())
        for errback in _as_list(options.get("link_error")):
            body.link_error(errback)
        for callback in _as_list(options.get("link")):
            body.link(callback)
        return body

    def __call__(self, body: Any = None, **options: Any) -> Any:
        """Send the chord with ``body`` (Celery's ``chord(header)(body)``)."""
        sig = chord(self.header, body or self.body, app=self._app, **self.options)
        return sig.apply_async(**options)


Signature.TYPES.update(chain=chain, group=group, chord=chord)
