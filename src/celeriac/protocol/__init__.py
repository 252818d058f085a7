"""The wire layer: Celery protocol-2 task messages, their serializers, and exceptions across the wire.

Nothing here does I/O; transports move `Message` objects and the worker turns them into `TaskMessage` with
`decode_task` (celery-wire.md §1).
"""

from celeriac.protocol.codec import (
    compression_type,
    decode_off_loop,
    decode_task,
    encode_body,
    encode_task,
    parse_datetime,
    safe_repr,
)
from celeriac.protocol.failures import exception_from_dict, exception_to_dict
from celeriac.protocol.message import Embed, Message, TaskMessage
from celeriac.protocol.serializers import (
    content_type_of,
    dumps,
    for_name,
    json_dumps,
    json_loads,
    loads,
    normalize_accept,
)

__all__ = [
    "Embed",
    "Message",
    "TaskMessage",
    "compression_type",
    "content_type_of",
    "decode_off_loop",
    "decode_task",
    "dumps",
    "encode_body",
    "encode_task",
    "exception_from_dict",
    "exception_to_dict",
    "for_name",
    "json_dumps",
    "json_loads",
    "loads",
    "normalize_accept",
    "parse_datetime",
    "safe_repr",
]
