"""Portal, admin and API docs pages carry a Content-Security-Policy that allows scripts from this origin only, and
they need nothing else: no inline script or event handler, nothing from another host — Swagger UI is served from
our static files, not a CDN at `@latest` (issue 15, finding 13)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_key_create
from suho.csp import CONTENT_SECURITY_POLICY
from suho.routers import operator_path
from tests.factories import staff_login
from tests.gateway.conftest import server_url  # noqa: F401  (a session fixture: daphne serving suho.asgi)
from tests.servers import http, http_base


class PageAudit(HTMLParser):
    """What a strict CSP would block on a page: inline scripts, inline event handlers, URLs of other hosts."""

    def __init__(self):
        super().__init__()
        self.inline_scripts: list[str] = []
        self.handlers: list[str] = []
        self.external: list[str] = []
        self.urls: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [f"<{tag} {name}>" for name, _value in attrs if name.startswith("on")]
        for name in ("src", "href", "action"):
            value = attributes.get(name)
            if value:
                self.urls.append(value)
                if urlsplit(value).netloc or value.startswith("//"):
                    self.external.append(value)
        if tag == "script" and not attributes.get("src") and attributes.get("type") != "application/json":
            self._in_inline_script = True

    def handle_data(self, data):
        if self._in_inline_script and data.strip():
            self.inline_scripts.append(data.strip()[:80])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False


def audit(response) -> PageAudit:
    assert response.status_code == 200, response
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = PageAudit()
    page.feed(response.content.decode())
    assert (page.inline_scripts, page.handlers, page.external) == ([], [], [])
    return page


def test_the_policy_allows_scripts_from_this_origin_only():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"


@pytest.fixture
def alice_client(account, client_of):
    api_key_create(account=account, created_by=account.user)  # the key table's revoke form
    return client_of(account.user)


def test_portal_pages_have_the_policy_and_nothing_inline(alice_client, account):
    base = f"/portal/accounts/{account.account_id}/"
    for path in ("/portal/", base, base + "risk/", base + "settings/", "/portal/signals/", "/portal/privacy/",
                 "/portal/accounts/add/"):  # fmt: skip
        audit(alice_client.get(path))


def test_confirmations_are_data_attributes_the_static_script_handles(alice_client, account):
    page = alice_client.get(f"/portal/accounts/{account.account_id}/").content.decode()
    assert 'data-confirm="Stop all trading on this account now?"' in page
    assert 'data-confirm="Revoke this key? EAs using it are disconnected."' in page


def test_public_pages_have_the_policy_and_nothing_inline(committed):
    for path in ("/", "/accounts/login/", "/portal/signup/", "/admin/login/", "/accounts/password_reset/"):
        audit(Client().get(path))


def test_admin_pages_have_the_policy_and_nothing_inline(committed, account):
    with operator_path():
        user = User.objects.create_superuser(username="operator", email="op@suho.example", password="x" * 12)
    operator = staff_login(Client(), user)
    for path in ("/admin/", "/admin/accounts/mt5account/",
                 f"/admin/accounts/mt5account/{account.account_id}/change/"):  # fmt: skip
        audit(operator.get(path))


def test_the_api_docs_load_swagger_ui_from_this_server_only(server_url):  # noqa: F811
    """Through daphne: the page names no other host, and every script and stylesheet it names is served here."""
    base = http_base(server_url)
    status, headers, body = http(base + "/api/docs/")
    assert status == 200
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = PageAudit()
    page.feed(body.decode())
    assert (page.inline_scripts, page.handlers, page.external) == ([], [], [])
    assert any("swagger-ui-bundle.js" in url for url in page.urls)
    for url in page.urls:
        status, headers, _body = http(urljoin(base + "/api/docs/", url))
        assert status == 200, url
