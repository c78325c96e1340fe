"""Compliance test fixtures: committed rows (the risk monitor commits per tenant and acts after commit), removed by
the owner afterwards; a local webhook receiver; notification settings."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def webhook():
    """An HTTP receiver on 127.0.0.1: yields (url, received JSON bodies)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/risk", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def notify_settings(settings, webhook):
    settings.RISK_ALERT_EMAILS = ["ops@example.com"]
    settings.RISK_WEBHOOK_URL = webhook[0]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return webhook[1]


@pytest.fixture(autouse=True)
def celery_eager():
    """Tasks queued by the code under test (risk notifications) run inline, in the test's thread."""
    from suho.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved
