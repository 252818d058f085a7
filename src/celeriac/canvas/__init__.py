"""Canvas: task calls as data (signatures) and their compositions (chain, group, chord, maps, chunks).

Sits below the app (it never imports it): a signature sends through its app as a `CanvasHost`. The
worker half, running what comes after a task, is `celeriac.worker.canvas`.
"""

from celeriac.canvas.errors import CanvasError, ChordError
from celeriac.canvas.host import CanvasHost, set_host_finder
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.primitives import chain, chord, group
from celeriac.canvas.results import GroupResult, ResultSet
from celeriac.canvas.signature import Signature, maybe_signature, signature

__all__ = [
    "CanvasError",
    "CanvasHost",
    "ChordError",
    "GroupResult",
    "ResultSet",
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "set_host_finder",
    "signature",
    "xmap",
    "xstarmap",
]
