"""One JSON object per log line, with the fields a turn adds (`extra=`).

Every line at ERROR means something an operator must act on. What a caller got wrong is
a WARNING at most, on one line, without a traceback: see `quiet_known_noise`.
"""

from __future__ import annotations

import json
import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from botbuilder.schema.teams import TeamsChannelData

from bots.request_body import aiohttp_reason
from telemetry.logs import TraceIds

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class BadHttpIsTheCallers(logging.Filter):
    """aiohttp's server logs each request it cannot parse at ERROR, with a traceback:
    "Error handling request" for a malformed request line or header, a header over its
    size limit, broken chunks, a method it does not know (after a connection's first
    request) or a Content-Encoding it cannot decode; "Unhandled exception" when a body
    that broke mid-way is drained. Any caller can send those: here each is one WARNING
    line with aiohttp's reason. A handler's own exception (a 500) stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "request refused: bad HTTP", ()
            record.reason = aiohttp_reason(exc)
            record.remote = remote
            record.exc_info, record.exc_text = None, None
        return True


_NOT_KNOWN = "%s is not a known attribute of class %s and will be ignored"
_CHANNEL_DATA_KEYS = frozenset(spec["key"] for spec in TeamsChannelData._attribute_map.values())


class TeamsChannelDataKeys(logging.Filter):
    """botbuilder 4.17.1's `TeamsInfo.get_team_id` (every member lookup) builds
    `TeamsChannelData(**channel_data)` from the JSON, so msrest warns that `eventType`, the
    JSON name of TeamsChannelData's own `event_type`, "is not a known attribute", on every
    Teams conversationUpdate. Only that warning is dropped: a name TeamsChannelData does
    not know at all, or any other class, still warns."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == _NOT_KNOWN and isinstance(args, tuple) and len(args) == 2
            and args[1] is TeamsChannelData and args[0] in _CHANNEL_DATA_KEYS
        )


def quiet_known_noise() -> None:
    """Install the filters above (once): at start-up, and by the adapter for embedders."""
    for name, kind in (("aiohttp.server", BadHttpIsTheCallers),
                       ("msrest.serialization", TeamsChannelDataKeys)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botbuilder and azure log every HTTP request at INFO
    for noisy in ("azure", "msrest", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet_known_noise()
