"""The access log's pre-encoded line is the line the JSON formatter writes for the same request."""

from __future__ import annotations

import json
import logging
import time

from gateway.observability import _JsonFormatter, access_line


def test_pre_encoded_access_line_matches_the_formatter() -> None:
    fields = {"event": "access", "method": "POST", "path": "/bench/v1/orders", "status": 200, "duration_ms": 0.412,
              "operation": "echo_order", "client_id": "bench-client", "correlation_id": "c" * 36,
              "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    record = logging.LogRecord("psconnect.access", logging.INFO, __file__, 1, "access", None, None)
    record.fields = fields
    formatted = _JsonFormatter().format(record)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)).encode()
    line = access_line(fields, ts)
    assert line.decode() == formatted  # same keys, same order, same text: log readers see no difference
    assert json.loads(line)["correlation_id"] == "c" * 36
