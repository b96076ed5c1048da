"""How room-recovery's log lines look: a timestamp and the structured fields on every line.

Two forms, chosen by ROOM_RECOVERY_LOG_FORMAT (`up` sets `json` for the parts it runs):

* text, for a person at a terminal:
  `12:03:04.517 INFO    👻 Removed ghost agent a from room r   room=r identity=a`
* json, one object a line, for files and log shippers:
  `{"time": "2026-11-28T12:03:04.517Z", "level": "INFO", "logger": "...", "message": "...",
  "room": "r", "identity": "a"}`

The fields are the record's `extra={...}`; a traceback, when there is one, is in `error`
(json) or follows the line (text).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping

LOG_FORMAT_VARIABLE = "ROOM_RECOVERY_LOG_FORMAT"
JSON = "json"
TEXT = "text"

# the attributes every LogRecord has: anything else came from `extra=`
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """The record's structured fields (its `extra=`), in the order they were given."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL   message   key=value ...`, local time."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.getMessage()}"
        fields = fields_of(record)
        if fields:
            line += "   " + " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, UTC time in ISO 8601 with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        body: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            body.setdefault(key, value)
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """The configured form: `json` when ROOM_RECOVERY_LOG_FORMAT says so, else `text`."""
    value = (environ if environ is not None else os.environ).get(LOG_FORMAT_VARIABLE, "")
    return JSON if value.strip().lower() == JSON else TEXT


def formatter(form: str) -> logging.Formatter:
    return JsonFormatter() if form == JSON else TextFormatter()


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() for c in text) else text
