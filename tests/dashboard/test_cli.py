"""``celeriac dashboard``'s refusals: one line each, exit code 2, before anything is served."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn")

from celeriac.cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--address", "0.0.0.0"], "--address 0.0.0.0 is not loopback: add --auth or --auth-header"),
        (["--auth", "ann"], "--auth must be user:password[:role]"),
        (["--auth", "ann:pw:boss"], "--auth role must be one of viewer, operator, admin, not 'boss'"),
        (["--auth", "a:b", "--auth-header", "X-User"], "use --auth or --auth-header, not both"),
        (["--auth-role-header", "X-Role"], "--auth-role-header applies to --auth-header only"),
        (["--port", "70000"], "--port must be 0..65535"),
    ],
)
def test_refused_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-b", "memory://", "dashboard", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
