"""plan_children: the ids of what a succeeded task's embed will send (callbacks, the next chain step), fixed before
its result is stored, so that the stored ``children`` list them, as Celery's worker does.

Celery sends those from within the task's context before it stores the result, so they are recorded as children.
celeriac stores first and sends after (worker/canvas.py: exactly-once joins need the stored outcome first), so the
ids are chosen here, written into the embed the hook sends from, and added to the request's children now.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.worker.request import Request


def plan_children(request: Request) -> None:
    """Give each plain-task callback and the next chain step of ``request``'s embed a task id (if the sender did
    not freeze one) and record it as a child. Group and chord steps keep their own ids and are not recorded."""
    embed: Any = request.message.embed
    steps = list(embed.get("callbacks") or ())
    chain = embed.get("chain") or ()
    if chain:
        steps.append(chain[-1])  # the chain's rest is stored reversed: the next step is the last element
    for step in steps:
        if not isinstance(step, dict) or step.get("subtask_type") not in (None, ""):
            continue
        options = step.get("options")
        if options is None:
            options = step["options"] = {}
        if not isinstance(options, dict):
            continue  # a malformed step: the hook logs it when it tries to send it
        task_id = options.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            task_id = options["task_id"] = str(uuid.uuid4())
        request.add_child(task_id)
