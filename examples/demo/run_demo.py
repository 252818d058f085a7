"""`make demo`: start a real worker process on the embedded SQLite broker, send tasks, print results, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    os.chdir(HERE)
    Path(".demo").mkdir(exist_ok=True)
    for leftover in Path(".demo").glob("celeriac.db*"):
        leftover.unlink()
    sys.path.insert(0, str(HERE))
    from tasks import add, app, divide, flaky, slow_square

    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "tasks", "worker", "-l", "warning", "-c", "8", "-n", "demo@%h"],
        cwd=HERE,
    )
    try:
        started = time.monotonic()
        print(f"add(2, 3)            = {add.delay(2, 3).get(timeout=30)}")
        squares = [slow_square.delay(i) for i in range(10)]
        print(f"slow_square(0..9)    = {[r.get(timeout=30) for r in squares]}")
        print(f"flaky(2)             = {flaky.delay(2).get(timeout=30)}")
        failed = divide.delay(1, 0)
        try:
            failed.get(timeout=30)
        except ZeroDivisionError as exc:
            print(f"divide(1, 0)         raised {type(exc).__name__}: {exc} (state {failed.state})")
        many = [add.delay(i, i) for i in range(500)]
        total = sum(r.get(timeout=60) for r in many)
        print(f"500 x add            = {total} (sum of 2i for i < 500)")
        print(f"all done in {time.monotonic() - started:.2f}s")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        app.close()
    print(f"worker exited with code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
