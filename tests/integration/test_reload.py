"""``--reload`` on a real worker process: an edit of the app's task module restarts the worker (same process id,
re-executed), after the task that was running finished; the new code runs. An edit that does not compile does not
restart it."""

from __future__ import annotations

import sys
from pathlib import Path

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scalekit import Ledger, ScaleWorker, wait_until, write_app


def test_an_edited_task_module_runs_its_new_code(tmp_path: Path, redis_url: str, prefix: str, producer: App) -> None:
    module = write_app(tmp_path)
    ledger = Ledger(tmp_path / "ledger")
    worker = ScaleWorker(tmp_path, redis_url, ["--reload", "--without-mingle", "--without-gossip"], prefix=prefix)
    try:
        worker.wait_for_output("--reload: watching 1 source file(s)")
        worker.wait_for_output("ready.")
        producer.send_task("scaleapp.version")
        wait_until(lambda: ledger.count("version") == {"v1": 1}, 30, "v1 ran")

        # A syntax error would only make the restarted worker fail to import: it is logged, the old code runs on.
        original = module.read_text()
        module.write_text(original + "\ndef broken(:\n")
        worker.wait_for_output("--reload: not restarting, scaleapp.py line")
        module.write_text(original)  # back as it was: compiles, so this change restarts the worker
        worker.wait_for_output("--reload: scaleapp.py changed; restarting the worker")
        wait_until(lambda: worker.output.count("ready.") == 2, 60, "the worker is back")

        release = tmp_path / "release"
        producer.send_task("scaleapp.hold", ["long", str(release)])
        wait_until(lambda: ledger.count("start") == {"long": 1}, 30, "the long task started")
        # A different length too: a .pyc written in the same second as the edit is not taken for current.
        module.write_text(module.read_text().replace('VERSION = "v1"', 'VERSION = "v2-edited"'))
        wait_until(lambda: worker.output.count("restarting the worker") == 2, 30, "the edit is seen")
        assert worker.output.count("ready.") == 2  # the running task is finished first
        release.touch()
        wait_until(lambda: worker.output.count("Restarting (changed: scaleapp.py)") == 2, 30, "restarting")
        wait_until(lambda: worker.output.count("ready.") == 3, 60, "the worker is back")
        assert ledger.count("done") == {"long": 1}
        producer.send_task("scaleapp.version")
        wait_until(lambda: ledger.count("version") == {"v1": 1, "v2-edited": 1}, 30, "the new code ran")
        assert "Traceback" not in worker.output
        assert worker.proc.poll() is None  # re-executed in place: the same process
    finally:
        assert worker.stop() == 0
