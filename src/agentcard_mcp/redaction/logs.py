"""Every log record of the process masked with ``redact_text`` (DESIGN §6)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .structure import redact
from .text import redact_text

__all__ = ["RedactingFilter", "install_log_redaction", "scrub_record"]


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with ``redact_text`` (and never drops a
    record). The message is rendered here, so arguments can't smuggle a PAN past it."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_agentcard_redacted", False):
        return record
    if record.args:
        # Arguments are data: masked as data first, so a card split over a list's items or a
        # dict's values is caught before formatting turns it into text.
        record.args = _redact_args(record.args)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the parts, masked
        message = f"{record.msg!s} {record.args!r}"
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
        record.exc_info = None  # formatters print exc_text; the live exception stays out
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record._agentcard_redacted = True
    return record


def _redact_args(args: Any) -> Any:
    try:
        masked = redact(args)
    except Exception:  # an argument redact cannot walk: the formatted text is still masked
        return args
    return tuple(masked) if isinstance(args, tuple) and isinstance(masked, list) else masked


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Redacts every log record of this process, once (safe to call again).

    The filter sits on our package logger and the root logger. Filters on a logger are not
    inherited by its children nor applied to records propagated from other loggers (the SDK's,
    httpx's, uvicorn's), so every record is also scrubbed where it is made, by the record
    factory."""
    for logger in (logging.getLogger(), logging.getLogger("agentcard_mcp")):
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_agentcard_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(factory))


def _redacting_factory(
    make: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(make(*args, **kwargs))

    factory._agentcard_redacting = True  # type: ignore[attr-defined]
    return factory
