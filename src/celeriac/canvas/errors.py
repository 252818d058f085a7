"""The canvas errors (defined in `celeriac.errors`, re-exported here for canvas code)."""

from celeriac.errors import CanvasError, ChordError

__all__ = ["CanvasError", "ChordError"]
