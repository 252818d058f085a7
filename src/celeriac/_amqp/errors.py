"""The translation of the AMQP client's exceptions into celeriac's, at the boundary of the AMQP code.

A channel error (RabbitMQ closed one channel: PRECONDITION_FAILED, ACCESS_REFUSED, NOT_FOUND, ...) becomes a
`ChannelError` whose one-line message names what was being done to which queue or exchange and quotes RabbitMQ's
reply code and text (for PRECONDITION_FAILED that text says which argument differs and how). A broken connection
becomes `ConnectionLost`. Nothing here holds a password: callers pass redacted text only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from celeriac._amqp.wire.errors import ChannelClosed, ChannelUnusable, LinkError, PublishFailed
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
    """The reply code and text of a channel error (code None when RabbitMQ gave none)."""
    if isinstance(exc, ChannelClosed | ChannelError):
        return exc.reply_code, exc.reply_text
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


@contextlib.contextmanager
def amqp_errors(where: str, server: str) -> Iterator[None]:
    """Turn the AMQP client's errors into celeriac's: a channel closed by RabbitMQ into `ChannelError` naming ``where``
    (e.g. ``"declaring queue 'celery'"``), a broken link into `ConnectionLost` naming ``server`` (redacted).
    """
    try:
        yield
    except ChannelError:
        raise
    except PublishFailed as exc:
        raise TransportError(f"{where}: {publish_failure(exc)}") from exc
    except LinkError as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: connection lost while {where} ({_short(exc)})") from exc
    except ChannelUnusable as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: channel closed while {where}") from exc
    except ChannelClosed as exc:
        raise ChannelError(describe(where, exc), exc.reply_code, exc.reply_text) from exc
    except (ConnectionError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
        raise ConnectionLost(f"RabbitMQ at {server}: connection lost while {where} ({_short(exc)})") from exc


def publish_failure(exc: PublishFailed) -> str:
    """What a nack or a returned message means, in one line."""
    if exc.returned:
        return (
            f"RabbitMQ returned the message as unroutable ({exc.reply_code} {exc.reply_text}): no queue is bound to "
            f"exchange {exc.exchange!r} for routing key {exc.routing_key!r}"
        )
    return "RabbitMQ nacked the message (it could not take it: a full queue with reject-publish, or a fault)"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
