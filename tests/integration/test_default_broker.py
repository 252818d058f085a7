"""With no broker configured the embedded SQLite file ``./celeriac.db`` is used; that is never silent: the client
warns once with the file's absolute path, the worker's banner and ``celeriac status`` name it too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP = "from celeriac import App\napp = App('plain')\n\n@app.task\ndef noop() -> None:\n    pass\n"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERIAC_")}
    env["PYTHONPATH"] = str(tmp_path)
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_the_default_file_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(APP)
    where = str(tmp_path / "celeriac.db")
    sent = run(tmp_path, sys.executable, "-c", "import plain; plain.noop.delay(); plain.noop.delay()")
    assert sent.returncode == 0, sent.stderr
    warnings = [line for line in sent.stderr.splitlines() if "no broker_url is set" in line]
    assert len(warnings) == 1 and where in warnings[0], sent.stderr
    status = run(tmp_path, sys.executable, "-m", "celeriac", "-A", "plain", "status", "-t", "0.2")
    assert status.returncode == 1 and f"(broker: sqlite:///celeriac.db ({where}))" in status.stderr, status.stderr
