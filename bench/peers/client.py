"""Run inside a peer's virtualenv: ``python client.py peer_huey 20000`` enqueues that many no-ops, then the
sentinel, with the peer's own client API, and prints ``{"seconds": s}``."""

from __future__ import annotations

import importlib
import json
import sys
import time

module = importlib.import_module(sys.argv[1])
started = time.perf_counter()
module.enqueue(int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
