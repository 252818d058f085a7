"""The public API is typed: mypy rejects a task called with the wrong argument types."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SNIPPET = """
from celeriac import App, AsyncResult

app = App("typed")

@app.task
def add(x: int, y: int) -> int:
    return x + y

@app.task(bind=True, max_retries=3)
async def fetch(self, url: str) -> str:
    return url

ok: AsyncResult[int] = add.delay(1, 2)
value: int = ok.get(timeout=1)
page: str = fetch.delay("https://example.org").get()
add.delay(1, "2")
fetch.delay(3)
"""


def test_wrong_argument_types_are_mypy_errors(tmp_path: Path) -> None:
    source = tmp_path / "typed_tasks.py"
    source.write_text(SNIPPET)
    out, _err, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--allow-untyped-defs",
            "--disable-error-code",
            "no-untyped-def",
            str(source),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 2, out
    assert 'Argument 2 to "delay" of "Task" has incompatible type "str"; expected "int"' in errors[0]
    assert 'Argument 1 to "delay" of "Task" has incompatible type "int"; expected "str"' in errors[1]


SETTINGS_SNIPPET = """
from celeriac import App

app = App("typed")
url: str | None = app.conf.broker_url
prefetch: int = app.conf.worker_prefetch_multiplier
app.conf.task_acks_late = True
queue: int = app.conf.task_default_queue
app.conf.worker_concurrency = "8"
app.conf.brokr_url
"""


def test_settings_have_their_types(tmp_path: Path) -> None:
    source = tmp_path / "typed_settings.py"
    source.write_text(SETTINGS_SNIPPET)
    out, _err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 3, out
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in errors[0]
    assert 'expression has type "str", variable has type "int | None"' in errors[1]
    # mypy suggests names only from the class itself, not from the groups Settings derives from.
    assert '"Settings" has no attribute "brokr_url"' in errors[2]
