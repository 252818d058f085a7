"""The translation of aiormq's exceptions into celeriac's, at the boundary of the AMQP code.

A channel error (RabbitMQ closed one channel: PRECONDITION_FAILED, ACCESS_REFUSED, NOT_FOUND, ...) becomes a
`ChannelError` whose one-line message names what was being done to which queue or exchange and quotes RabbitMQ's
reply code and text (for PRECONDITION_FAILED that text says which argument differs and how). A broken connection
becomes `ConnectionLost`. Nothing here holds a password: callers pass redacted text only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiormq.exceptions as amqp_exc

from celeriac.errors import ConnectionLost, TransportError

REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
}
"""AMQP reply codes by name (the ones RabbitMQ closes a channel or returns a message with)."""

_CHANNEL_CODES = {
    amqp_exc.ChannelAccessRefused: 403,
    amqp_exc.ChannelNotFoundEntity: 404,
    amqp_exc.ChannelLockedResource: 405,
    amqp_exc.ChannelPreconditionFailed: 406,
}

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp_exc.AMQPConnectionError,
    ConnectionError,
    OSError,
    EOFError,
)
"""The errors that mean the link (not one channel) broke."""


class ChannelError(TransportError):
    """RabbitMQ closed a channel because of what was asked of one entity; the connection is still fine.

    Attributes:
        reply_code: the AMQP reply code (406 PRECONDITION_FAILED, 404 NOT_FOUND, 403 ACCESS_REFUSED...), or None.
        reply_text: RabbitMQ's explanation as it sent it.
    """

    def __init__(self, message: str, reply_code: int | None, reply_text: str) -> None:
        super().__init__(message)
        self.reply_code = reply_code
        self.reply_text = reply_text


def reply_of(exc: BaseException) -> tuple[int | None, str]:
    """The reply code and text of an aiormq channel error (code None when RabbitMQ gave none)."""
    for kind, known in _CHANNEL_CODES.items():
        if isinstance(exc, kind):
            return known, str(exc.args[0]) if exc.args else ""
    args: tuple[object, ...] = tuple(exc.args)
    if len(args) >= 2 and (args[0] is None or isinstance(args[0], int)):
        code = args[0] if isinstance(args[0], int) else None
        return code, str(args[1] or "")
    return None, str(exc)


def describe(where: str, exc: BaseException) -> str:
    """``<where>: RabbitMQ refused it (406 PRECONDITION_FAILED - inequivalent arg ...)``: one line."""
    code, text = reply_of(exc)
    if code is None:
        return f"{where}: channel closed ({text or type(exc).__name__})"
    name = REPLY_NAMES.get(code, str(code))
    if not text.startswith(name):
        text = f"{name} - {text}" if text else name
    return f"{where}: RabbitMQ refused it ({code} {text})"


def is_channel_error(exc: BaseException) -> bool:
    """Whether ``exc`` means only one channel was closed (the connection lives on)."""
    return isinstance(exc, amqp_exc.AMQPChannelError | amqp_exc.ChannelInvalidStateError) and not isinstance(
        exc, amqp_exc.AMQPConnectionError
    )


@contextlib.contextmanager
def amqp_errors(where: str, server: str) -> Iterator[None]:
    """Turn aiormq errors into celeriac's: a channel closed by RabbitMQ into `ChannelError` naming ``where``
    (e.g. ``"declaring queue 'celery'"``), a broken link into `ConnectionLost` naming ``server`` (redacted).
    """
    try:
        yield
    except ChannelError:
        raise
    except amqp_exc.DeliveryError as exc:
        raise TransportError(f"{where}: {publish_failure(exc)}") from exc
    except amqp_exc.AMQPConnectionError as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: connection lost while {where} ({_short(exc)})") from exc
    except amqp_exc.ChannelInvalidStateError as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: channel closed while {where}") from exc
    except amqp_exc.AMQPChannelError as exc:
        code, text = reply_of(exc)
        raise ChannelError(describe(where, exc), code, text) from exc
    except (ConnectionError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: connection lost while {where} ({_short(exc)})") from exc


def publish_failure(exc: amqp_exc.DeliveryError) -> str:
    """What a nack or a returned message means, in one line."""
    frame = exc.frame
    name = type(frame).__name__
    if name == "Return":
        code = getattr(frame, "reply_code", None)
        text = getattr(frame, "reply_text", "")
        return (
            f"RabbitMQ returned the message as unroutable ({code} {text}): no queue is bound to exchange "
            f"{getattr(frame, 'exchange', '')!r} for routing key {getattr(frame, 'routing_key', '')!r}"
        )
    if name == "Nack":
        return "RabbitMQ nacked the message (it could not take it: a full queue with reject-publish, or a fault)"
    return f"delivery failed ({name})"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
