"""Log lines as text (uvicorn's look) or as JSON, one object a line for log shippers (TIERGATE_LOG_FORMAT=json):
uvicorn's lines and Tiergate's alike, in the serving process and in each worker."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
_TEXT = "%(levelname)s:     %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message", "pid"}, plus "exception" with its traceback when there is one, and
    "request" on the per-request lines (gateway/request_log.py)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if isinstance(request := record.__dict__.get("request"), dict):  # gateway/request_log.py's fields
            out["request"] = request
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT)


def uvicorn_config(fmt: LogFormat) -> dict[str, Any]:
    """uvicorn's `log_config`: its own default for text; for JSON, every uvicorn logger through JsonFormatter."""
    import uvicorn.config

    if fmt == "text":
        return uvicorn.config.LOGGING_CONFIG
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "stdout": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }
