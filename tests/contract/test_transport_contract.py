"""Every transport against the shared contract (celeriac.testing.contract), one test per check."""

from __future__ import annotations

import pytest

from celeriac.testing.contract import TRANSPORT_CHECKS, TransportCheck, TransportFactory, check_id


@pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=check_id)
async def test_transport(check: TransportCheck, make_transport: TransportFactory, queue_name: str) -> None:
    await check(make_transport, queue_name)
