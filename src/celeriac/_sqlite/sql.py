"""Loading SQL kept in ``.sql`` resources: named blocks, each starting at a ``-- name: <key>`` line."""

from __future__ import annotations

import re
from importlib import resources


def load_queries(package: str, name: str) -> dict[str, str]:
    """The named SQL blocks of a ``.sql`` resource: each starts at a ``-- name: <key>`` line."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = re.fullmatch(r"--\s*name:\s*(\w+)\s*", line)
        if header:
            current = blocks.setdefault(header.group(1), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines).strip() for key, lines in blocks.items()}
