"""The behaviour every transport and every result backend must show, written once and run against each.

A transport check is ``async def check_…(make: TransportFactory, queue: str)``: ``make(options)`` returns
a new, unconnected transport to the broker under test, ``queue`` is a name no other test uses. A backend
check is ``async def check_…(make: BackendFactory)``. `TRANSPORT_CHECKS` and `BACKEND_CHECKS` list them all,
so a test module runs each as one parametrized test::

    @pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=check_id)
    async def test_transport(check, make_transport, queue_name):
        await check(make_transport, queue_name)

Checks wait on conditions with timeouts, never on the clock; the few bounded waits for something *not* to
happen (the prefetch window) are short and say so. Timing-based checks use a 1 s visibility timeout.

The map: `helpers` (factories and helpers), `transport` (`TRANSPORT_CHECKS`), `backend` (store, read, wait) and
`primitives` (join, lease), together `BACKEND_CHECKS`; `chords` (`CHORD_CHECKS`: the chord join, for the
backends that join chords).
"""

from celeriac.testing.contract.backend import RESULT_CHECKS, task_meta
from celeriac.testing.contract.chords import CHORD_CHECKS
from celeriac.testing.contract.helpers import (
    QUIET,
    TIMEOUT,
    VISIBILITY_TIMEOUT,
    BackendCheck,
    BackendFactory,
    TransportCheck,
    TransportFactory,
    check_id,
    is_pending,
    message,
    next_broadcast,
    next_delivery,
    raises,
    wait_for,
    with_options,
)
from celeriac.testing.contract.primitives import PRIMITIVE_CHECKS
from celeriac.testing.contract.transport import TRANSPORT_CHECKS

BACKEND_CHECKS: tuple[BackendCheck, ...] = RESULT_CHECKS + PRIMITIVE_CHECKS

__all__ = [
    "BACKEND_CHECKS",
    "CHORD_CHECKS",
    "PRIMITIVE_CHECKS",
    "QUIET",
    "RESULT_CHECKS",
    "TIMEOUT",
    "TRANSPORT_CHECKS",
    "VISIBILITY_TIMEOUT",
    "BackendCheck",
    "BackendFactory",
    "TransportCheck",
    "TransportFactory",
    "check_id",
    "is_pending",
    "message",
    "next_broadcast",
    "next_delivery",
    "raises",
    "task_meta",
    "wait_for",
    "with_options",
]
