"""The catalog's log format (text or one JSON object per line), for every process."""

from __future__ import annotations

import datetime
import json
import logging

from ..settings import Settings

__all__ = ["JSONFormatter", "setup_logging"]


def setup_logging(settings: Settings) -> None:
    """Route every logger through one handler in the configured format and level."""
    handler = logging.StreamHandler()
    if settings.server.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
