"""Every result backend against the shared contract (celeriac.testing.contract), one test per check."""

from __future__ import annotations

import pytest

from celeriac.testing.contract import BACKEND_CHECKS, BackendCheck, BackendFactory, check_id


@pytest.mark.parametrize("check", BACKEND_CHECKS, ids=check_id)
async def test_backend(check: BackendCheck, make_backend: BackendFactory) -> None:
    await check(make_backend)
