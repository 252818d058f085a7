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
