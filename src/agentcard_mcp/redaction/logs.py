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
    """Masks ``record`` in place. Its ``msg`` and ``args`` keep their shape wherever that is
    safe: some formatters read the arguments themselves (uvicorn's access log unpacks its five),
    so a clean record is left as it is and a masked one keeps masked arguments when the message
    they render is clean; only then does the masked message replace both (``args`` empty).
    Arguments are masked as data first (``_redact_args``)."""
    if getattr(record, "_agentcard_redacted", False):
        return record
    if record.args:
        record.args = _redact_args(record.args)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string, or a masked argument that no longer fits its %d
        record.msg, record.args = redact_text(f"{record.msg!s} {record.args!r}"), ()
    else:
        clean = redact_text(message)
        if clean is not message:
            record.msg, record.args = _masked_parts(record, clean)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
        record.exc_info = None  # formatters print exc_text; the live exception stays out
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record._agentcard_redacted = True
    return record


def _masked_parts(record: logging.LogRecord, clean: str) -> tuple[str, tuple[Any, ...]]:
    """The record's format and its arguments each masked, if together they render clean;
    else the masked message alone."""
    if isinstance(record.args, tuple):
        fmt = redact_text(str(record.msg))
        args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        try:
            shown = fmt % args
        except Exception:  # a masked argument no longer fits its placeholder (%d)
            return clean, ()
        if redact_text(shown) is shown:
            return fmt, args
    return clean, ()


def _redact_args(args: Any) -> Any:
    """Each argument masked as data, so that a card split over a list's items or a dict's
    values inside one is caught before formatting turns it into text; the arguments are not
    chained to each other ("%s%s" renders them together, and the message is masked as text)."""
    try:
        if isinstance(args, tuple):
            masked = tuple(redact(arg) for arg in args)
            return args if all(m is a for m, a in zip(masked, args, strict=True)) else masked
        return redact(args)
    except Exception:  # an argument redact cannot walk: the message is still masked as text
        return args


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
