"""How the gateway's processes log: every logger (uvicorn's too) to stderr, one record a line,
as text for people (``GATEWAY_LOG_FORMAT=text``, the default) or as JSON objects for a log
pipeline (``json``), through python-json-logger.

A JSON line holds ``level``, ``logger``, ``message`` and ``time`` (RFC 3339, UTC), the fields
of the request being handled (``telemetry.log_context``), any ``extra`` fields of the call
(an access line's ``method``, ``route``, ``status``, ``duration_ms``), and ``exc_info`` (the
traceback) when there is one. Text lines end with the request's fields in brackets.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from gateway.telemetry.log_context import CONTEXT_FIELDS

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore")
"""They log every URL fetched at INFO, and input URLs can carry signed tokens."""


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> [request_id=... key_id=...]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        attributes = record.__dict__
        fields = " ".join(
            f"{name}={attributes[name]}" for name in CONTEXT_FIELDS if attributes.get(name)
        )
        return f"{line} [{fields}]" if fields else line


class JsonFormatter(OrjsonFormatter):
    """One JSON object per record (orjson: a tenth of the stdlib encoder's time)."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn's records carry the message again with colour codes.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )


def logging_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a gateway process; uvicorn applies it in each
    worker it starts (its ``log_config``), so workers log as their parent does."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "gateway.telemetry.log_context.ContextFilter"}},
        "formatters": {"line": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "loggers": {
            # uvicorn's loggers lose their own handlers and go through the root's.
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def configure_logging(log_format: LogFormat = "text", level: str = "INFO") -> None:
    """Log as ``logging_config`` says, from now on, in this process."""
    logging.config.dictConfig(logging_config(log_format, level))
