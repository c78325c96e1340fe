"""`make run` (suho/supervise.py) with DEBUG off: production settings serve their pages and static files at once.

Issue 15, finding 13: `DEBUG=0 make run` answered 500 on every page until someone ran collectstatic, because
whitenoise's manifest storage needs STATIC_ROOT's manifest. The supervisor is started for real, in a process of its
own, on the session's test database, with an empty STATIC_ROOT of its own; the page is fetched as the TLS proxy in
front forwards it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connections
from prodsmoke import Browser, static_links

from tests.servers import free_port

START_S = 120.0  # db_setup, migrate, nats_setup, seed_demo and collectstatic, each a Django process, then daphne


@pytest.fixture
def supervised(committed, tmp_path):
    """`python -m suho.supervise` with DEBUG=0 and the production settings; yields (port, static root)."""
    port, static_root = free_port(), tmp_path / "static"
    test_database = connections["default"].settings_dict["NAME"]
    environ = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SUHO_TESTING"}}
    env = {
        **environ,
        "DJANGO_SETTINGS_MODULE": "suho.settings",
        "DEBUG": "0",
        "SECRET_KEY": "supervise-test-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": urlsplit(settings.DATABASE_URL)._replace(path=f"/{test_database}").geturl(),
        "DATABASE_ADMIN_URL": settings.DATABASE_ADMIN_URL,
        "REDIS_URL": settings.REDIS_URL,
        "NATS_URL": settings.NATS_URL,
        "STATIC_ROOT": str(static_root),
        "SUHO_STATE_DIR": str(tmp_path / "state"),
        "PORT": str(port),
    }
    log_path = tmp_path / "supervise.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "suho.supervise"], env=env, cwd=settings.BASE_DIR,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        browser = Browser(port)
        deadline = time.monotonic() + START_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"supervise did not serve (exit {process.poll()}):\n{log_path.read_text()[-3000:]}")
            try:
                if browser.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.2)  # not listening yet
        yield browser, static_root, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # as Ctrl-C: the supervisor stops web, worker and beat
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_debug_off_start_collects_static_files_and_serves_the_pages_with_them(supervised):
    browser, static_root, log_path = supervised
    for path in ("/accounts/login/", "/admin/login/"):
        page = browser.request("GET", path)
        assert page.status == 200, f"{path}: {page.status}\n{log_path.read_text()[-3000:]}"
        links = static_links(page.body)
        assert links, f"{path} links no static file"
        for link in links:
            assert browser.request("GET", link).status == 200, link
    assert (static_root / "staticfiles.json").is_file()  # the manifest, in the STATIC_ROOT this start was given
