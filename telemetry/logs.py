"""Log records carry the trace and span ids of the span they were written in.

A filter on the JSON log handler (bots/json_logging.py): `trace_id` and `span_id`, in the
W3C form (32 and 16 hex digits) that every trace viewer searches by. Records exported through
OpenTelemetry (OTLP, Azure Monitor) carry the same ids natively.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

from telemetry import runtime


class TraceIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if runtime.ACTIVE is None:
            return True
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
