"""Telling operators: e-mail to `RISK_ALERT_EMAILS` and a JSON POST to `RISK_WEBHOOK_URL` (each when set).

Called after commit (risk events) or from a scheduled job (audit verification). A failure is logged with its
context and never raised: the caller's work is done and committed; the notification is best effort.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from django.conf import settings
from django.core.mail import send_mail

log = logging.getLogger(__name__)


def operators_notify(*, subject: str, payload: dict, context: dict | None = None) -> None:
    context = context or {}
    if settings.RISK_ALERT_EMAILS:
        try:
            send_mail(
                subject=subject,
                message="\n".join(f"{key}: {value}" for key, value in payload.items()),
                from_email=None,
                recipient_list=settings.RISK_ALERT_EMAILS,
            )
        except Exception:
            log.exception("operator e-mail failed", extra=context)
    url = settings.RISK_WEBHOOK_URL
    if url:
        try:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"RISK_WEBHOOK_URL must be http(s), got {url[:20]!r}")
            request = urllib.request.Request(  # noqa: S310 - scheme checked above
                url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=settings.RISK_WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
                response.read()
        except Exception:
            log.exception("operator webhook failed", extra=context)
