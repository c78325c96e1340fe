"""Log output: JSON lines for production, and the redaction of secrets that travel in URLs.

The TradingView webhook's URL path is its credential (`/api/tv/<token>/`) and a legacy v1 EA may put its key in the
query string (`?api_key=`): both are replaced by `[redacted]` in every log line (the filter on the console handler)
and in daphne's access log, which daphne writes to stdout itself, not through `logging`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

CONTEXT_FIELDS = ("account_id", "tenant_id", "session_id", "signal_id", "task")
REDACTED = "[redacted]"
SECRETS_IN_URLS = (
    re.compile(r"(/api/tv/)[^/\s?#\"']+"),  # the webhook token (signals/webhook_urls.py)
    re.compile(r"([?&]api_key=)[^&\s\"'#]+"),  # a v1 EA's key in the handshake URL (trading/consumers.py)
)


def secrets_redact(text: str) -> str:
    for pattern in SECRETS_IN_URLS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record whose message or traceback carries a secret URL (django.request's "Not Found: <path>",
    "Internal Server Error: <path>", daphne's errors) before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = secrets_redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = secrets_redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({field: str(getattr(record, field)) for field in CONTEXT_FIELDS if hasattr(record, field)})
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


def access_log_redact_install() -> None:
    """Make daphne's command line use an access log that redacts secret URLs (it builds the log after loading the
    application, from the name in `daphne.cli`). Without daphne installed there is nothing to do."""
    try:
        from daphne import cli
        from daphne.access import AccessLogGenerator
    except ImportError:  # pragma: no cover — daphne is a dependency; another ASGI server logs its own way
        return

    class RedactingAccessLogGenerator(AccessLogGenerator):
        def write_entry(self, host, date, request, *args, **kwargs):
            super().write_entry(host, date, secrets_redact(request), *args, **kwargs)

    cli.AccessLogGenerator = RedactingAccessLogGenerator
