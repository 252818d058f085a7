"""Every result backend that joins chords (SQLite, Redis) against the chord contract (CHORD_CHECKS)."""

from __future__ import annotations

import pytest

from celeriac.testing.contract import CHORD_CHECKS, BackendCheck, BackendFactory, check_id


@pytest.mark.parametrize("check", CHORD_CHECKS, ids=check_id)
async def test_chord_join(check: BackendCheck, make_backend: BackendFactory) -> None:
    await check(make_backend)
