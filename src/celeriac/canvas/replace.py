"""``self.replace(sig)`` in a bound task: the signature takes the running task's place in its canvas.

The replacement is sent with the running task's id (so the caller's ``AsyncResult`` reads its result), group
and index, root, and the canvas the running message carried: its callbacks, errbacks, the rest of its chain
and its chord. The running task then raises `Ignore`: nothing is stored for it, the worker acks it, and what
came after it now comes after the replacement. A chain replacement ends with the running task's id.
"""

from __future__ import annotations

from typing import Any

from celeriac.canvas.errors import CanvasError
from celeriac.canvas.signature import Signature


async def areplace(request: Any, sig: Signature) -> None:
    """Send ``sig`` in place of the task of ``request`` (a ``RequestContext``); the caller raises Ignore."""
    if request.called_directly or not request.id:
        raise CanvasError("replace() is for a task run by a worker (this one was called directly)")
    if sig.subtask_type not in (None, "chain"):
        raise CanvasError(f"replace() takes a task signature or a chain, not a {sig.subtask_type}")
    sig = sig.clone()
    for callback in request.callbacks or ():
        sig.link(callback)
    for errback in request.errbacks or ():
        sig.link_error(errback)
    options: dict[str, Any] = {"task_id": request.id, "root_id": request.root_id, "parent_id": request.parent_id}
    if request.chain:
        options["chain"] = list(request.chain)
    if request.chord:
        options["chord"] = dict(request.chord)
    if request.group:
        options["group_id"] = request.group
        options["group_index"] = request.group_index
    if sig.subtask_type == "chain" and (request.chord or request.group):
        raise CanvasError("replace() with a chain inside a group or chord is not supported")
    await sig.aapply_async(**{k: v for k, v in options.items() if v is not None})
